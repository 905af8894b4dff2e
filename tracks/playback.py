"""The playback URL chain: CDN, else S3 presigned, else an origin token URL."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Literal
from urllib.parse import urlencode

from django.conf import settings
from django.core.cache import cache
from django.urls import reverse
from django.utils.http import content_disposition_header

from cdn.origin import audience_scope, origin_token
from cdn.services import (
    CdnSigningError,
    cdn_is_enabled,
    cdn_signed_url,
    cdn_signing_failed,
)
from mediastore.backends import storage_for
from tracks.models import SHARED_VISIBILITIES, StorageBackend, Track
from veza import metrics

logger = logging.getLogger(__name__)

Kind = Literal["stream", "download"]


@dataclass(frozen=True)
class PlaybackUrl:
    url: str
    expires_at: int
    source: Literal["cdn", "s3", "origin"]


def download_filename(track: Track) -> str:
    """The client's file name with the extension of what the bytes are: a
    file uploaded as `page.html` downloads as `page.mp3`, never as a page a
    browser would open."""
    stem = PurePosixPath(track.original_filename).stem or "track"
    extension = PurePosixPath(track.storage_key or "").suffix or ".audio"
    return f"{stem}{extension}"


def track_disposition(track: Track, kind: Kind) -> str | None:
    if kind == "download":
        return content_disposition_header(
            as_attachment=True, filename=download_filename(track)
        )
    return None


def origin_path(track: Track, kind: Kind) -> str:
    return reverse("tracks:origin", kwargs={"track_id": str(track.pk), "kind": kind})


# Bumped when settings change (tests), so cached URLs follow the new config.
_generation = 0

# The URLs this process handed out lately, in front of the shared cache: a
# hit is a dict lookup instead of a cache read and an unpickle. The key names
# everything a URL depends on and access is checked before each lookup, so an
# entry can only grow old; it is dropped when the shared cache would drop it.
_LOCAL_URLS_MAX = 2048
_local_urls: dict[str, tuple[float, PlaybackUrl]] = {}

# Bound once: .labels() validates and takes a lock on every call.
_URL_HIT = metrics.CACHE_HITS.labels("playback_url")
_URL_MISS = metrics.CACHE_MISSES.labels("playback_url")


def playback_cache_reset(**kwargs: object) -> None:
    global _generation
    _generation += 1
    _local_urls.clear()


def playback_url_ttl(track: Track) -> int:
    """Seconds a new URL for `track` lives.

    An origin URL TRACK_URL_TTL: the origin checks the track on every request,
    so making it private or taking it down ends the URL at once. A CDN or S3
    presigned URL (a track on S3) goes past the origin and nothing can recall
    it: no longer than CDN_TOKEN_TTL, short by default.
    """
    if track.storage_backend == StorageBackend.S3:
        return min(settings.TRACK_URL_TTL, settings.CDN_TOKEN_TTL)
    return int(settings.TRACK_URL_TTL)


def track_playback_url(*, track: Track, kind: Kind, origin_base: str) -> PlaybackUrl:
    """Where a client fetches the track's bytes, valid at least half its TTL.

    A URL signed for the same object is reused for half its lifetime: signing
    is most of the cost of this request, and stable URLs cache better at a
    CDN. Access was checked before this is called.
    """
    ttl = playback_url_ttl(track)
    if ttl < 2:
        _URL_MISS.inc()
        return _sign_playback_url(track=track, kind=kind, origin_base=origin_base)
    cache_key = (
        f"veza:playback:{_generation}:{ttl}:{track.pk}:{kind}:"
        f"{track.storage_backend}:{track.sha256}:{origin_base}:"
        f"{track.visibility in SHARED_VISIBILITIES}"
    )
    local = _local_urls.get(cache_key)
    if local is not None and time.time() < local[0]:
        _URL_HIT.inc()
        return local[1]
    url: PlaybackUrl | None = cache.get(cache_key)
    if url is not None:
        _URL_HIT.inc()
    else:
        _URL_MISS.inc()
        url = _sign_playback_url(track=track, kind=kind, origin_base=origin_base)
        cache.set(cache_key, url, timeout=ttl // 2)
    if len(_local_urls) >= _LOCAL_URLS_MAX:
        _local_urls.clear()
    # Signed at expires_at - ttl, so reused until half the lifetime is left
    # (earlier if the signer shortened the URL's life).
    _local_urls[cache_key] = (url.expires_at - (ttl - ttl // 2), url)
    return url


def _sign_playback_url(*, track: Track, kind: Kind, origin_base: str) -> PlaybackUrl:
    ttl = playback_url_ttl(track)
    expires_at = int(time.time()) + ttl
    key = track.storage_key or ""
    # The CDN pulls from the bucket, so it can serve only rows on S3; rows
    # still on local disk (during a migration) play from the origin.
    if cdn_is_enabled() and track.storage_backend == StorageBackend.S3:
        try:
            signed = cdn_signed_url(path="/" + key, expires_at=expires_at)
        except CdnSigningError as exc:
            # Raises CdnUnavailable (503) when CDN_FALLBACK=none.
            cdn_signing_failed(error=exc, subject=f"track {track.pk}")
        else:
            metrics.PLAYBACK_URLS.labels(kind, "cdn").inc()
            return PlaybackUrl(signed.url, signed.expires_at, "cdn")
    if track.storage_backend == StorageBackend.S3:
        url = storage_for("s3").presigned_url(
            key,
            expires_in=ttl,
            content_type=track.mime_type,
            disposition=track_disposition(track, kind),
        )
        if url:
            metrics.PLAYBACK_URLS.labels(kind, "s3").inc()
            return PlaybackUrl(url, expires_at, "s3")
    path = origin_path(track, kind)
    token = origin_token(
        audience_scope(path, shared=track.visibility in SHARED_VISIBILITIES),
        expires_at,
    )
    query = urlencode({"expires": expires_at, "token": token})
    metrics.PLAYBACK_URLS.labels(kind, "origin").inc()
    return PlaybackUrl(f"{origin_base.rstrip('/')}{path}?{query}", expires_at, "origin")
