"""Non-API URLs of tracks: the origin that serves token URLs."""

from django.urls import path

from tracks import origin

app_name = "tracks"

urlpatterns = [
    path(
        "origin/tracks/<uuid:track_id>/<str:kind>", origin.track_origin, name="origin"
    ),
]
