"""The upload page: `/upload/`, Uppy's Dashboard over the tus endpoint."""

# The page is a shell: its script (`tracks/static/tracks/upload.js`) sends the
# file in chunks to `/api/v1/uploads/tus/` with the session cookie and the
# CSRF token, then polls `GET /api/v1/uploads/<id>` until the track is ready.
# The S3 multipart transport (`/api/v1/uploads/s3/multipart…`, parts straight
# to the bucket) is not offered here yet.

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse, reverse_lazy
from django.utils.cache import patch_cache_control
from django.views.decorators.http import require_safe

from tracks.models import Visibility

UPLOAD_TEMPLATE = "tracks/upload.html"

# One request per chunk: big enough that a fast link is not held back by
# round trips, small enough that a cut costs little to send again.
CHUNK_BYTES = 5 * 1024 * 1024

# The streaming app's player page (streaming/player_urls.py), as a path with
# a placeholder: tracks sits below streaming, so it names no view of it.
PLAYER_PATH = "/tracks/{track}/play"

# Nothing inline and nothing from another origin: Uppy's bundle runs under
# this as is. Its stylesheet draws icons from `data:` URLs. An S3 transport
# will add the bucket's origin to connect-src.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


@login_required(login_url=reverse_lazy("webrtc:login"))
@require_safe
def upload_page(request: HttpRequest) -> HttpResponse:
    """Upload tracks, resumably, from a signed-in user's browser."""
    response = render(
        request,
        UPLOAD_TEMPLATE,
        {
            "tus_endpoint": reverse("uploads:tus-create"),
            "uploads_url": reverse("uploads:list"),
            "player_path": PLAYER_PATH,
            "chunk_bytes": CHUNK_BYTES,
            "max_bytes": settings.TRACK_MAX_UPLOAD_BYTES,
            "visibilities": Visibility.choices,
            "default_visibility": Visibility.PRIVATE,
        },
    )
    response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    # The page carries the user's CSRF token: never shared or stored.
    patch_cache_control(response, private=True, no_store=True)
    return response
