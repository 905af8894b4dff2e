"""Backfill of HLS packages: which tracks lack one, and building them in turn.

`manage.py package_hls` uses these; uploads and the admin go through
`streaming.services.hls_package_request`, which queues the build for the
task workers instead.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.core.cache import cache
from django.utils import timezone

from streaming.models import HlsPackage, PackageStatus
from streaming.services import (
    hls_content_hash,
    hls_package_build,
    hls_package_request,
    hls_package_settings,
    serving_cache_key,
)
from tracks.models import Track

logger = logging.getLogger(__name__)

# Error code of a package whose in-process build was interrupted (Ctrl-C):
# failed at once, so the next run retries it without waiting out the lease.
INTERRUPTED = "interrupted"


class UnknownTracks(ValueError):
    """Some requested track ids are malformed or name no track."""

    def __init__(self, ids: Sequence[str]) -> None:
        self.ids = list(ids)
        super().__init__("no such track: " + ", ".join(self.ids))


@dataclass(frozen=True)
class BackfillPlan:
    """The tracks to package, newest first, and those left alone."""

    track_ids: list[uuid.UUID]
    audio_seconds: float
    # Tracks that already have a ready package for the current settings.
    already_ready: int
    taken_down: list[uuid.UUID] = field(default_factory=list)


@dataclass(frozen=True)
class BackfillResult:
    """What became of one track's package."""

    track_id: str
    # "ready", "failed", "queued", "busy" (another process holds it) or
    # "skipped" (taken down or deleted since the plan was made).
    outcome: str
    package_id: int | None = None
    content_hash: str = ""
    error_code: str = ""
    error: str = ""
    audio_seconds: float = 0.0
    seconds: float = 0.0


def hls_backfill_plan(
    *,
    track_ids: Sequence[str] = (),
    force: bool = False,
    limit: int | None = None,
) -> BackfillPlan:
    """The tracks that need a package for the current settings.

    Every track (or only `track_ids`) without a ready package whose content
    hash matches the current settings, or all of them when `force`.
    Taken-down tracks are never packaged: they cannot be played anyway.
    Raises UnknownTracks when a requested id names no track.
    """
    queryset = Track.objects.order_by("-created_at", "pk")
    if track_ids:
        wanted = _parse_ids(track_ids)
        queryset = queryset.filter(pk__in=wanted)
        found = set(queryset.values_list("pk", flat=True))
        if missing := [str(pk) for pk in wanted if pk not in found]:
            raise UnknownTracks(missing)
    package_settings = hls_package_settings()
    ready_hashes = set(
        HlsPackage.objects.filter(
            status=PackageStatus.READY, superseded_at__isnull=True
        ).values_list("content_hash", flat=True)
    )
    selected: list[uuid.UUID] = []
    taken_down: list[uuid.UUID] = []
    audio_seconds = 0.0
    already_ready = 0
    rows = queryset.values_list("pk", "sha256", "taken_down_at", "duration_seconds")
    for pk, sha256, taken_down_at, duration in rows.iterator(chunk_size=2000):
        if taken_down_at is not None:
            taken_down.append(pk)
            continue
        # The same hash the packager names the directory with (track id,
        # bytes and settings), so a ladder change makes every track due.
        content_hash = hls_content_hash(
            track=Track(pk=pk, sha256=sha256), package_settings=package_settings
        )
        if content_hash in ready_hashes and not force:
            already_ready += 1
            continue
        if limit is not None and len(selected) >= limit:
            continue
        selected.append(pk)
        audio_seconds += duration or 0.0
    return BackfillPlan(
        track_ids=selected,
        audio_seconds=audio_seconds,
        already_ready=already_ready,
        taken_down=taken_down,
    )


def _parse_ids(values: Sequence[str]) -> list[uuid.UUID]:
    parsed: list[uuid.UUID] = []
    bad: list[str] = []
    for value in values:
        try:
            parsed.append(uuid.UUID(value))
        except ValueError:
            bad.append(value)
    if bad:
        raise UnknownTracks(bad)
    return list(dict.fromkeys(parsed))


def hls_backfill_package(*, track: Track) -> HlsPackage:
    """The package row of `track` for the current settings, created if missing.

    Unlike `hls_package_request` this queues nothing: the caller builds it
    with `hls_package_build`, which claims the row itself (so there is no
    state to reset here) and a worker never builds it a second time.
    """
    package_settings = hls_package_settings()
    package, _created = HlsPackage.objects.get_or_create(
        content_hash=hls_content_hash(track=track, package_settings=package_settings),
        defaults={
            "track": track,
            "settings": package_settings,
            "storage_backend": track.storage_backend,
        },
    )
    if package.status == PackageStatus.READY and package.superseded_at is not None:
        # Current again (the settings went back to it) before it was
        # retired: the request makes it live without building it again.
        return hls_package_request(track=track)
    return package


def hls_backfill_track(
    *, track_id: uuid.UUID, force: bool = False, queue: bool = False
) -> BackfillResult:
    """Package one track in this process, or queue it for the workers.

    In-process builds are synchronous. A build that raises (a bug, not a
    bad source) is recorded as failed with `internal_error` and the next
    track goes on; an interrupt marks the package failed and propagates.
    """
    started = time.monotonic()
    track = Track.objects.filter(pk=track_id).first()
    if track is None or track.taken_down_at is not None:
        return BackfillResult(track_id=str(track_id), outcome="skipped")
    if queue:
        package = hls_package_request(track=track, force=force)
        outcome = {
            PackageStatus.PENDING: "queued",
            PackageStatus.READY: "ready",
        }.get(PackageStatus(package.status), "busy")
        return _result(track, package, outcome, started)
    package = hls_backfill_package(track=track)
    try:
        built = hls_package_build(package_id=package.pk, force=force)
    except KeyboardInterrupt:
        hls_backfill_release(package_id=package.pk)
        raise
    except Exception:
        # hls_package_build has already marked the row failed and logged it.
        built = HlsPackage.objects.filter(pk=package.pk).first()
    if built is None:
        return BackfillResult(track_id=str(track_id), outcome="skipped")
    outcome = {
        PackageStatus.READY: "ready",
        PackageStatus.FAILED: "failed",
    }.get(PackageStatus(built.status), "busy")
    return _result(track, built, outcome, started)


def _result(
    track: Track, package: HlsPackage, outcome: str, started: float
) -> BackfillResult:
    return BackfillResult(
        track_id=str(track.pk),
        outcome=outcome,
        package_id=package.pk,
        content_hash=package.content_hash,
        error_code=package.error_code if outcome == "failed" else "",
        error=package.error if outcome == "failed" else "",
        audio_seconds=(package.duration_seconds or 0.0) if outcome == "ready" else 0.0,
        seconds=time.monotonic() - started,
    )


def hls_backfill_release(*, package_id: int) -> None:
    """Give up a package this process was building (it was interrupted).

    Failed rather than left processing under its lease, so a rerun or a
    worker can claim it at once; the rebuild rewrites the same directory,
    so files stored before the interrupt are overwritten, not leaked.
    """
    released = HlsPackage.objects.filter(
        pk=package_id, status=PackageStatus.PROCESSING
    ).update(
        status=PackageStatus.FAILED,
        error_code=INTERRUPTED,
        error="The backfill building it was interrupted.",
        lease_until=None,
        finished_at=timezone.now(),
    )
    if released:
        # .update() sends no post_save: the origin's cached view goes by hand.
        content_hash = (
            HlsPackage.objects.filter(pk=package_id)
            .values_list("content_hash", flat=True)
            .first()
        )
        if content_hash:
            cache.delete(serving_cache_key(content_hash))
        logger.warning("package %s released after an interrupt", package_id)
