"""Reads of HLS packages: the package a track plays, and the origin's view of one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.cache import cache

from mediastore.backends import storage_for
from streaming.errors import WaveformNotReady
from streaming.models import HlsPackage, PackageStatus
from streaming.services import (
    hls_content_hash,
    hls_package_settings,
    serving_cache_key,
)
from streaming.waveform import WAVEFORM_NAME
from tracks.models import SHARED_VISIBILITIES, Track
from veza import metrics

# Seconds the origin keeps what it needs to serve a package. Every save of a
# package or its track clears the entry (streaming/signals.py).
SERVING_CACHE_SECONDS = 60


def hls_package_for_track(*, track: Track) -> HlsPackage | None:
    """The package `track` plays: the one for the current settings, else the
    newest ready one (so a ladder change or a packager upgrade keeps old
    packages playing until the new ones are built). A superseded package
    plays only when no other is ready: its files go after the grace period."""
    current_hash = hls_content_hash(
        track=track, package_settings=hls_package_settings()
    )
    packages = list(
        HlsPackage.objects.filter(track_id=track.pk).order_by("-created_at")
    )
    ready = [p for p in packages if p.status == PackageStatus.READY]
    live = [p for p in ready if p.superseded_at is None]
    current = next((p for p in packages if p.content_hash == current_hash), None)
    if current is not None and current in live:
        return current
    if live or ready:
        return (live or ready)[0]
    return current or (packages[0] if packages else None)


@dataclass(frozen=True)
class ServedPackage:
    """What the origin needs to serve a package's files, cacheable as it is."""

    content_hash: str
    track_id: str
    storage_backend: str
    files: dict[str, int]
    taken_down: bool
    # The track is public or unlisted (what the token must have been signed
    # for: streaming.playback.hls_origin_scope).
    shared: bool

    @property
    def directory(self) -> str:
        return f"hls/{self.content_hash}/"


def hls_package_served(*, content_hash: str) -> ServedPackage | None:
    """The ready package named `content_hash`, or None (not found or not ready)."""
    key = serving_cache_key(content_hash)
    cached: Any = cache.get(key)
    if cached is not None:
        metrics.CACHE_HITS.labels("hls_package").inc()
        return cached or None
    metrics.CACHE_MISSES.labels("hls_package").inc()
    row = (
        HlsPackage.objects.filter(content_hash=content_hash, status=PackageStatus.READY)
        .values(
            "track_id",
            "storage_backend",
            "files",
            "track__taken_down_at",
            "track__visibility",
        )
        .first()
    )
    served = (
        ServedPackage(
            content_hash=content_hash,
            track_id=str(row["track_id"]),
            storage_backend=row["storage_backend"],
            files=row["files"],
            taken_down=row["track__taken_down_at"] is not None,
            shared=row["track__visibility"] in SHARED_VISIBILITIES,
        )
        if row
        else None
    )
    # False caches "no such package" too, so a scan of made-up names costs
    # one query per name per minute, not per request.
    cache.set(key, served or False, SERVING_CACHE_SECONDS)
    return served


# A waveform is at most ~16 KB; a day keeps the popular ones off the bucket.
WAVEFORM_CACHE_SECONDS = 24 * 3600


def track_waveform(*, track: Track) -> bytes:
    """The waveform JSON of the package `track` plays (WaveformNotReady when
    that package is not ready, or was made before packages had one)."""
    package = hls_package_for_track(track=track)
    if (
        package is None
        or package.status != PackageStatus.READY
        or WAVEFORM_NAME not in package.files
    ):
        status = package.status if package is not None else "missing"
        raise WaveformNotReady(details={"status": status})
    # Content-addressed, so never stale: every listener after the first is
    # answered from the shared cache, not the bucket. Access was checked above.
    cache_key = f"veza:waveform:{package.content_hash}"
    body: bytes | None = cache.get(cache_key)
    if body is None:
        body = b"".join(
            storage_for(package.storage_backend).read(
                package.directory + WAVEFORM_NAME,
                0,
                package.files[WAVEFORM_NAME] - 1,
            )
        )
        cache.set(cache_key, body, WAVEFORM_CACHE_SECONDS)
    return body
