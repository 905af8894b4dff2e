"""Non-API URLs of streaming: the HLS origin and nginx's authorisation check."""

from django.urls import path

from streaming import origin

app_name = "streaming"

urlpatterns = [
    # /origin/hls/<expires>/<token>/<content hash>/<file>: the token signs the
    # package directory, so every relative URI in its playlists carries it.
    path(
        "origin/hls/<int:expires>/<str:token>/<str:content_hash>/<path:name>",
        origin.hls_origin,
        name="origin",
    ),
    path("origin/hls-auth", origin.hls_auth, name="origin-auth"),
]
