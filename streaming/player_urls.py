"""Non-API URLs of streaming: the embeddable player page."""

from django.urls import path

from streaming import player

urlpatterns = [
    path("tracks/<uuid:track_id>/play", player.track_player, name="track-player"),
]
