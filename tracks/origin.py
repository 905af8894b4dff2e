"""The origin: serves track bytes to holders of an origin token URL."""

from __future__ import annotations

from django.conf import settings
from django.http import FileResponse, HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.views.decorators.http import require_GET

from cdn.origin import origin_token_audience
from mediastore.backends import storage_for
from tracks import selectors
from tracks.errors import InvalidToken
from tracks.models import SHARED_VISIBILITIES
from tracks.playback import Kind, track_disposition
from veza.errors import DomainError, NotFound, RangeNotSatisfiableError
from veza.exception_handler import error_response
from veza.http_ranges import RangeNotSatisfiable, conditional_range, etag_matches


@require_GET
def track_origin(request: HttpRequest, track_id: str, kind: Kind) -> HttpResponseBase:
    if kind not in ("stream", "download"):
        return error_response(NotFound())
    try:
        return _serve(request, track_id, kind)
    except DomainError as exc:
        return error_response(exc)


def _serve(request: HttpRequest, track_id: str, kind: Kind) -> HttpResponseBase:
    # The token covers the path, so it names this track and this kind, and
    # whether the track was shared when it was handed out.
    signed_shared = origin_token_audience(
        request.path, request.GET.get("expires", ""), request.GET.get("token", "")
    )
    if signed_shared is None:
        raise InvalidToken()
    track = selectors.track_get_servable(track_id=track_id)
    if signed_shared != (track.visibility in SHARED_VISIBILITIES):
        raise InvalidToken("The URL was revoked: the track's visibility changed.")
    key = track.storage_key or ""
    etag = f'"{track.sha256}"'
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Cache-Control": f"private, max-age={settings.TRACK_URL_TTL}",
        "Content-Type": track.mime_type,
    }
    disposition = track_disposition(track, kind)
    if disposition:
        headers["Content-Disposition"] = disposition
    else:
        headers["Content-Disposition"] = "inline"

    if etag_matches(request.headers.get("If-None-Match"), etag):
        return HttpResponse(
            status=304,
            headers={"ETag": etag, "Cache-Control": headers["Cache-Control"]},
        )

    storage = storage_for(track.storage_backend)
    if settings.VEZA_ACCEL_REDIRECT_PREFIX and storage.local_path(key) is not None:
        # nginx serves the bytes (Range included) from its internal location.
        headers["X-Accel-Redirect"] = (
            settings.VEZA_ACCEL_REDIRECT_PREFIX.rstrip("/") + "/" + key
        )
        return HttpResponse(headers=headers)

    size = track.size_bytes
    try:
        byte_range = conditional_range(
            request.headers.get("Range"), request.headers.get("If-Range"), etag, size
        )
    except RangeNotSatisfiable:
        return error_response(
            RangeNotSatisfiableError(), headers={"Content-Range": f"bytes */{size}"}
        )
    if byte_range is None:
        local = storage.local_path(key)
        if local is not None:
            # FileResponse lets the WSGI server use sendfile.
            response: HttpResponse | StreamingHttpResponse | FileResponse = (
                FileResponse(local.open("rb"))
            )
        else:
            response = StreamingHttpResponse(storage.read(key, 0, size - 1))
        headers["Content-Length"] = str(size)
        status = 200
    else:
        first, last = byte_range
        response = StreamingHttpResponse(storage.read(key, first, last))
        headers["Content-Length"] = str(last - first + 1)
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        status = 206
    response.status_code = status
    for name, value in headers.items():
        response.headers[name] = value
    return response
