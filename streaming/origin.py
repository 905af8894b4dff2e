"""The HLS origin: serves package files to holders of a directory token URL.

Plain Django views, not DRF: this is the hot path (one request per segment).
`hls_origin` serves the bytes itself (direct mode, either backend);
`hls_auth` answers nginx's `auth_request` so nginx serves the rest of a
package from disk (nginx mode, infra/nginx/veza.conf).
"""

from __future__ import annotations

import gzip
import itertools
import logging
import re
from typing import BinaryIO

from django.conf import settings
from django.http import FileResponse, HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.utils.cache import patch_vary_headers
from django.views.decorators.csrf import csrf_exempt

from cdn.origin import origin_token_audience
from cdn.services import cdn_cache_control
from mediastore.backends import MediaStorage, storage_for
from streaming.errors import HlsFileNotFound
from streaming.media_types import hls_content_type, is_playlist
from streaming.playback import ORIGIN_PREFIX, hls_token_scope
from streaming.selectors import ServedPackage, hls_package_served
from tracks.errors import InvalidToken, TrackTakenDown
from veza import metrics
from veza.errors import DomainError, RangeNotSatisfiableError
from veza.exception_handler import error_response
from veza.http_ranges import RangeNotSatisfiable, conditional_range, etag_matches

logger = logging.getLogger(__name__)

ALLOWED_METHODS = "GET, HEAD, OPTIONS"
EXPOSED_HEADERS = "Content-Length, Content-Range"
# Browsers cache a preflight answer at most this long (Chromium: 2 h).
PREFLIGHT_MAX_AGE = "7200"

# What nginx may ask about (X-Original-URI): only clean paths, so the path
# checked here is the path nginx serves after its own normalisation (no
# dot segments, percent escapes or doubled slashes to resolve differently).
_ORIGIN_URI = re.compile(
    re.escape(ORIGIN_PREFIX)
    + r"(?P<expires>[0-9]{1,12})/(?P<token>[A-Za-z0-9_-]{1,128})/"
    r"(?P<content_hash>[0-9a-f]{64})/(?P<name>[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*)"
)


@csrf_exempt  # so other methods get this view's 405, not a CSRF page
def hls_origin(
    request: HttpRequest, expires: int, token: str, content_hash: str, name: str
) -> HttpResponseBase:
    """GET/HEAD one file of a package; OPTIONS answers CORS preflights."""
    cors = _cors_headers(request)
    if request.method == "OPTIONS":
        response: HttpResponseBase = HttpResponse(status=204)
        response["Access-Control-Allow-Methods"] = ALLOWED_METHODS
        response["Access-Control-Allow-Headers"] = "Range"
        response["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE
    elif request.method not in ("GET", "HEAD"):
        response = error_response(
            DomainError("Use GET or HEAD.", code="method_not_allowed"),
            status=405,
            headers={"Allow": ALLOWED_METHODS},
        )
    else:
        try:
            package = _authorise(expires, token, content_hash, name)
            response = _serve(request, package, name)
        except RangeNotSatisfiable:
            response = error_response(
                RangeNotSatisfiableError(),
                headers={"Content-Range": f"bytes */{package.files[name]}"},
            )
        except DomainError as exc:
            response = error_response(exc)
    _apply_cors(response, cors)
    metrics.HLS_REQUESTS.labels(_kind(name), str(response.status_code)).inc()
    return response


def hls_auth(request: HttpRequest) -> HttpResponseBase:
    """nginx `auth_request`: may the client fetch `X-Original-URI`?

    204 with `X-Veza-Backend: local|s3` when the token, package and takedown
    checks pass; else the error the direct view would answer (403
    invalid_token, 404 hls_file_not_found, 451 track_taken_down). nginx
    caches the 204 per token scope, so this runs about once per package and
    token, not once per segment.
    """
    uri = request.headers.get("X-Original-URI", "")
    match = _ORIGIN_URI.fullmatch(uri.partition("?")[0])
    try:
        if match is None:
            raise HlsFileNotFound()
        package = _authorise(
            int(match["expires"]),
            match["token"],
            match["content_hash"],
            match["name"],
        )
    except DomainError as exc:
        response: HttpResponseBase = error_response(exc)
    else:
        response = HttpResponse(
            status=204, headers={"X-Veza-Backend": package.storage_backend}
        )
    metrics.HLS_REQUESTS.labels("auth", str(response.status_code)).inc()
    return response


def _authorise(expires: int, token: str, content_hash: str, name: str) -> ServedPackage:
    # The token signs the package directory, so a token of package A fails
    # on package B's hash: 403 before anything is looked up.
    signed_shared = origin_token_audience(hls_token_scope(content_hash), expires, token)
    if signed_shared is None:
        raise InvalidToken()
    package = hls_package_served(content_hash=content_hash)
    if package is None:
        raise HlsFileNotFound()  # no such package, or not ready
    if signed_shared != package.shared:
        raise InvalidToken("The URL was revoked: the track's visibility changed.")
    if package.taken_down:
        raise TrackTakenDown()
    # Only names the package lists: anything else, `..` included, is 404.
    if name not in package.files:
        raise HlsFileNotFound()
    return package


def _serve(request: HttpRequest, package: ServedPackage, name: str) -> HttpResponseBase:
    size = package.files[name]
    key = package.directory + name
    playlist = is_playlist(name)
    compress = playlist and _accepts_gzip(request.headers.get("Accept-Encoding"))
    # Strong, and distinct per encoding: the directory is content-addressed
    # and the gzip output deterministic (mtime 0), so each is byte-stable.
    etag = f'"{package.content_hash[:16]}-{name}-{size}{"-gzip" if compress else ""}"'
    headers = {
        "Content-Type": hls_content_type(name),
        "Cache-Control": cdn_cache_control(name=name),
        "ETag": etag,
    }
    if not compress:
        headers["Accept-Ranges"] = "bytes"
    if etag_matches(request.headers.get("If-None-Match"), etag):
        not_modified = HttpResponse(status=304)
        for header in ("ETag", "Cache-Control"):
            not_modified[header] = headers[header]
        return _vary(not_modified, playlist)
    storage = storage_for(package.storage_backend)
    if playlist:
        # A few hundred bytes: read whole, so gzip (Apple HLS authoring
        # spec §10.1) needs no streaming compressor.
        body = b"".join(_read(storage, key, 0, size - 1)) if size else b""
        if compress:
            body = gzip.compress(body, mtime=0)
            headers["Content-Encoding"] = "gzip"
            return _vary(_bytes_response(request, body, headers, None), playlist)
        return _vary(
            _bytes_response(request, body, headers, _range(request, etag, size)),
            playlist,
        )

    local = storage.local_path(key)
    if settings.VEZA_ACCEL_REDIRECT_PREFIX and local is not None:
        # nginx serves the bytes (Range included) from its internal location.
        headers["X-Accel-Redirect"] = (
            settings.VEZA_ACCEL_REDIRECT_PREFIX.rstrip("/") + "/" + key
        )
        return HttpResponse(headers=headers)
    byte_range = _range(request, etag, size)
    first, last = byte_range if byte_range else (0, size - 1)
    headers["Content-Length"] = str(last - first + 1)
    if byte_range:
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    status = 206 if byte_range else 200
    if request.method == "HEAD":
        return HttpResponse(status=status, headers=headers)
    response: FileResponse | StreamingHttpResponse
    if local is not None:
        try:
            opened = local.open("rb")
        except FileNotFoundError:
            logger.warning("HLS file %s is listed but missing on local disk", key)
            raise HlsFileNotFound() from None
        # FileResponse lets the WSGI server use sendfile, for a range too
        # (a segment of a rung's one file): see _FileRange.
        response = FileResponse(
            opened if byte_range is None else _FileRange(opened, first, last)
        )
        if "Content-Disposition" in response:
            del response["Content-Disposition"]  # guessed from the file name
    else:
        response = StreamingHttpResponse(_read(storage, key, first, last))
    response.status_code = status
    # Set after construction: FileResponse would guess a type from the name.
    for header, value in headers.items():
        response[header] = value
    return response


class _FileRange:
    """Bytes `first` to `last` of an open file, as FileResponse streams them.

    `read` stops at the range's end (ASGI servers, which iterate); `fileno`
    lets a WSGI server's sendfile send from the file's position, which is
    `first`, exactly Content-Length bytes (gunicorn's does). `seek` is for
    socket.sendfile's fallback (it seeks to the offset, then reads); not
    `seekable`, and no `tell` or `name`, so FileResponse guesses neither a
    length nor a type.
    """

    def __init__(self, file: BinaryIO, first: int, last: int) -> None:
        file.seek(first)
        self._file = file
        self._left = last - first + 1

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        data = self._file.read(self._left if size < 0 else min(size, self._left))
        self._left -= len(data)
        return data

    def fileno(self) -> int:
        return self._file.fileno()

    def seekable(self) -> bool:
        return False

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._file.seek(offset, whence)

    def close(self) -> None:
        self._file.close()


def _bytes_response(
    request: HttpRequest,
    body: bytes,
    headers: dict[str, str],
    byte_range: tuple[int, int] | None,
) -> HttpResponse:
    if byte_range is not None:
        first, last = byte_range
        headers["Content-Range"] = f"bytes {first}-{last}/{len(body)}"
        body = body[first : last + 1]
    headers["Content-Length"] = str(len(body))
    return HttpResponse(
        b"" if request.method == "HEAD" else body,
        status=206 if byte_range else 200,
        headers=headers,
    )


def _read(
    storage: MediaStorage, key: str, first: int, last: int
) -> itertools.chain[bytes]:
    """The bytes of `key`, with the first chunk read now.

    Reading it before the response starts turns a storage failure into a
    503 (or a missing file into a 404) with the standard error shape,
    instead of a response cut off mid-body.
    """
    chunks = storage.read(key, first, last)
    try:
        head = next(chunks, b"")
    except FileNotFoundError:
        logger.warning("HLS file %s is listed but missing on %s", key, storage.backend)
        raise HlsFileNotFound() from None
    return itertools.chain([head], chunks)


def _range(request: HttpRequest, etag: str, size: int) -> tuple[int, int] | None:
    return conditional_range(
        request.headers.get("Range"), request.headers.get("If-Range"), etag, size
    )


def _accepts_gzip(header: str | None) -> bool:
    for coding in (header or "").split(","):
        name, _, params = coding.partition(";")
        if name.strip().lower() not in ("gzip", "x-gzip"):
            continue
        quality = params.strip().lower().removeprefix("q=").strip()
        return not (quality and _is_zero(quality))
    return False


def _is_zero(quality: str) -> bool:
    try:
        return float(quality) == 0
    except ValueError:
        return False


def _vary(response: HttpResponseBase, playlist: bool) -> HttpResponseBase:
    if playlist:
        patch_vary_headers(response, ("Accept-Encoding",))
    return response


def _cors_headers(request: HttpRequest) -> dict[str, str]:
    """Access-Control-* for hls.js, which fetches with XHR/fetch."""
    allowed = settings.HLS_CORS_ALLOWED_ORIGINS
    if "*" in allowed:
        return {
            "Access-Control-Allow-Origin": "*",
            "Access-Control-Expose-Headers": EXPOSED_HEADERS,
        }
    origin = request.headers.get("Origin")
    if origin is None or origin not in allowed:
        return {}
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Expose-Headers": EXPOSED_HEADERS,
    }


def _apply_cors(response: HttpResponseBase, cors: dict[str, str]) -> None:
    for header, value in cors.items():
        response[header] = value
    if "*" not in settings.HLS_CORS_ALLOWED_ORIGINS:
        # The answer depends on Origin, so shared caches must key on it.
        patch_vary_headers(response, ("Origin",))


def _kind(name: str) -> str:
    return "playlist" if is_playlist(name) else "segment"
