"""URLs of the streaming API, under /api/v1/."""

from django.urls import path

from streaming.api import views

app_name = "streaming-api"

urlpatterns = [
    path("tracks/<uuid:track_id>/hls", views.TrackHlsView.as_view(), name="hls"),
    path(
        "tracks/<uuid:track_id>/waveform",
        views.TrackWaveformView.as_view(),
        name="waveform",
    ),
]
