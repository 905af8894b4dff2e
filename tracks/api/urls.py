"""URLs of the tracks API, under /api/v1/tracks/."""

from django.urls import path

from tracks.api import views

app_name = "tracks-api"

# The playback URLs first: they are resolved far more often than the others.
urlpatterns = [
    path("<uuid:track_id>/stream", views.TrackStreamView.as_view(), name="stream"),
    path(
        "<uuid:track_id>/download", views.TrackDownloadView.as_view(), name="download"
    ),
    path("", views.TrackListView.as_view(), name="list"),
    path("<uuid:track_id>/", views.TrackDetailView.as_view(), name="detail"),
]
