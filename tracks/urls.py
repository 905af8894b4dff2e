"""Non-API URLs of tracks: the upload page and the origin of token URLs."""

from django.urls import path

from tracks import origin, upload_page

app_name = "tracks"

urlpatterns = [
    path("upload/", upload_page.upload_page, name="upload"),
    path(
        "origin/tracks/<uuid:track_id>/<str:kind>", origin.track_origin, name="origin"
    ),
]
