"""URLs of resumable uploads, under /api/v1/uploads/."""

from django.urls import path

from tracks.api import upload_views
from tracks.api.views import UploadQuotaView

app_name = "uploads"

urlpatterns = [
    path("", upload_views.UploadSessionListView.as_view(), name="list"),
    path("quota", UploadQuotaView.as_view(), name="quota"),
    path("tus/", upload_views.TusCreateView.as_view(), name="tus-create"),
    path(
        "tus/<uuid:upload_id>", upload_views.TusUploadView.as_view(), name="tus-upload"
    ),
    path(
        "s3/multipart",
        upload_views.S3MultipartCreateView.as_view(),
        name="s3-multipart",
    ),
    path(
        "s3/multipart/<str:upload_id>",
        upload_views.S3MultipartUploadView.as_view(),
        name="s3-multipart-upload",
    ),
    path(
        "s3/multipart/<str:upload_id>/complete",
        upload_views.S3MultipartCompleteView.as_view(),
        name="s3-multipart-complete",
    ),
    path(
        "s3/multipart/<str:upload_id>/<int:part_number>",
        upload_views.S3MultipartPartView.as_view(),
        name="s3-multipart-part",
    ),
    path(
        "<uuid:upload_id>",
        upload_views.UploadSessionDetailView.as_view(),
        name="detail",
    ),
]
