"""The upload page: `/upload/`, Uppy's Dashboard over tus or straight to S3."""

# The page is a shell: its script (`tracks/static/tracks/upload.js`) sends the
# file with the session cookie and the CSRF token, then polls
# `GET /api/v1/uploads/<id>` until the track is ready. With tracks on S3 the
# parts go straight to the bucket (`/api/v1/uploads/s3/multipart…` signs
# them); otherwise, or with UPLOAD_PAGE_S3_DIRECT off, in chunks over tus to
# `/api/v1/uploads/tus/`.

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse, reverse_lazy
from django.utils.cache import patch_cache_control
from django.views.decorators.http import require_safe

from tracks.models import Visibility
from tracks.selectors import upload_page_bucket

UPLOAD_TEMPLATE = "tracks/upload.html"

# One request per chunk (tus) or part (S3, whose parts are at least 5 MiB):
# big enough that a fast link is not held back by round trips, small enough
# that a cut costs little to send again.
CHUNK_BYTES = 5 * 1024 * 1024

# The streaming app's player page (streaming/player_urls.py), as a path with
# a placeholder: tracks sits below streaming, so it names no view of it.
PLAYER_PATH = "/tracks/{track}/play"


def content_security_policy(*, connect_to: str | None) -> str:
    """Nothing inline and nothing from another origin, but the bucket the
    parts go to: Uppy's bundle runs under this as is. Its stylesheet draws
    icons from `data:` URLs."""
    connect = "connect-src 'self'" + (f" {connect_to}" if connect_to else "")
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            connect,
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
    bucket = upload_page_bucket()
    response = render(
        request,
        UPLOAD_TEMPLATE,
        {
            "transport": "s3" if bucket else "tus",
            "tus_endpoint": reverse("uploads:tus-create"),
            # Uppy's aws-s3 plugin adds /s3/multipart… to this.
            "s3_endpoint": reverse("uploads:list").rstrip("/"),
            "uploads_url": reverse("uploads:list"),
            "player_path": PLAYER_PATH,
            "chunk_bytes": CHUNK_BYTES,
            "max_bytes": settings.TRACK_MAX_UPLOAD_BYTES,
            "visibilities": Visibility.choices,
            "default_visibility": Visibility.PRIVATE,
        },
    )
    response["Content-Security-Policy"] = content_security_policy(connect_to=bucket)
    # The page carries the user's CSRF token: never shared or stored.
    patch_cache_control(response, private=True, no_store=True)
    return response
