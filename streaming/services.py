"""Writes of HLS packages: request, build (package and publish), delete."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import tempfile
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from cdn.services import cdn_cache_control
from mediastore.backends import MediaStorage, storage_backends_in_use, storage_for
from mediastore.errors import StorageUnavailable
from mediastore.tally import tally_add
from streaming.media_types import hls_content_type
from streaming.models import HlsPackage, PackageStatus
from streaming.playlists import MASTER_NAME, master_playlist, media_playlist
from streaming.renditions import PLAYLIST_NAME, PackageOutput, PackagingError
from streaming.waveform import WAVEFORM_NAME
from tracks.models import Track
from veza import metrics
from veza.errors import NotFound

logger = logging.getLogger(__name__)

# Part of the content hash: bump it when the packager's output changes, so
# new packages land in new directories and CDN caches never mix the two.
# 2: waveform.json (peaks) in every package; 3: one fMP4 file per rung.
PACKAGER_VERSION = 3
# The storage tally of ready packages (mediastore.tally).
PACKAGE_TALLY = "package"
# Parallel PUTs when storing a package on S3 (a file per rung, and
# about a hundred for a package made before packager 3).
_S3_UPLOAD_THREADS = 8


def serving_cache_key(content_hash: str) -> str:
    """Where the origin caches what it needs to serve a package."""
    # v2: entries carry the track's sharing (ServedPackage.shared).
    return f"veza:hls-serving:v2:{content_hash}"


def _forget_serving(content_hash: str) -> None:
    # .update() sends no post_save, so writes here clear the entry themselves.
    key = serving_cache_key(content_hash)
    cache.delete(key)
    transaction.on_commit(lambda: cache.delete(key))


def package_tally_add(package: HlsPackage, *, sign: int) -> None:
    """Count a ready package in (1) or out of (-1) its backend's tally."""
    tally_add(
        kind=PACKAGE_TALLY,
        backend=package.storage_backend,
        rows=sign,
        files=sign * len(package.files),
        bytes=sign * package.total_bytes,
    )


def hls_package_settings() -> dict[str, Any]:
    """The encode settings a package is built with, as its hash covers them."""
    return {
        "ladder": [int(kbps) for kbps in settings.HLS_LADDER],
        "segment_seconds": int(settings.HLS_SEGMENT_SECONDS),
        "packager": PACKAGER_VERSION,
    }


def hls_content_hash(*, track: Track, package_settings: dict[str, Any]) -> str:
    """The package directory name: the track, its bytes and the settings.

    The track id is in it so two tracks with the same bytes never share a
    directory (a takedown or delete of one must not touch the other).
    """
    material = json.dumps(
        {"track": str(track.pk), "sha256": track.sha256, **package_settings},
        sort_keys=True,
    )
    return hashlib.sha256(material.encode()).hexdigest()


def hls_package_request(*, track: Track, force: bool = False) -> HlsPackage:
    """The package of `track` for the current settings, queued unless ready.

    A package already ready (or being built under a live lease) is returned
    as it is, unless `force`: then it is built again into the same directory.
    """
    package_settings = hls_package_settings()
    content_hash = hls_content_hash(track=track, package_settings=package_settings)
    try:
        return _hls_package_queue(
            track=track,
            content_hash=content_hash,
            package_settings=package_settings,
            force=force,
        )
    except IntegrityError:
        # The track was deleted after the caller read it (from another
        # process's cache, or a moment before): its package has no row to
        # point at, which the foreign key finds at commit.
        if not Track.objects.filter(pk=track.pk).exists():
            raise NotFound("No such track.", code="track_not_found") from None
        raise


def _hls_package_queue(
    *,
    track: Track,
    content_hash: str,
    package_settings: dict[str, Any],
    force: bool,
) -> HlsPackage:
    from streaming.tasks import hls_package_task

    with transaction.atomic():
        package, created = HlsPackage.objects.select_for_update().get_or_create(
            content_hash=content_hash,
            defaults={
                "track": track,
                "settings": package_settings,
                "storage_backend": track.storage_backend,
            },
        )
        busy = (
            package.status == PackageStatus.PROCESSING
            and package.lease_until is not None
            and package.lease_until > timezone.now()
        )
        ready = package.status == PackageStatus.READY
        if not created and not force and ready and package.superseded_at is not None:
            # The settings went back to this package's own while it waited
            # for retirement: its files are all there, so it is live again
            # (the row lock keeps a retirement from deleting them meanwhile).
            return _unsupersede(package)
        if not created and not force and (ready or busy):
            return package
        if not created:
            if package.status == PackageStatus.READY:
                package_tally_add(package, sign=-1)
            package.status = PackageStatus.PENDING
            package.error_code = ""
            package.error = ""
            package.lease_until = None
            package.superseded_at = None
            package.save(
                update_fields=[
                    "status",
                    "error_code",
                    "error",
                    "lease_until",
                    "superseded_at",
                ]
            )
        package_id = package.pk
        transaction.on_commit(
            lambda: hls_package_task.enqueue(package_id=package_id, force=force)
        )
    return package


def hls_package_build(*, package_id: int, force: bool = False) -> HlsPackage | None:
    """Package and publish one package; None when it is gone.

    The row is claimed with a conditional UPDATE (pending, failed, or
    processing under an expired lease), so two workers never build the same
    package. Files are stored segments first, media playlists next, master
    last; only then does the row become ready. Failures leave it failed with
    the reason, and its files removed.
    """
    now = timezone.now()
    claimable = Q(status__in=[PackageStatus.PENDING, PackageStatus.FAILED]) | Q(
        status=PackageStatus.PROCESSING, lease_until__lt=now
    )
    if force:
        claimable |= Q(status=PackageStatus.READY)
    # Only this release's packager builds: a row queued for another (by a
    # process of the previous release) would get this layout under a hash
    # that names the other; it fails `outdated`, and the backfill builds
    # the current one.
    claimable &= Q(settings__packager=PACKAGER_VERSION)
    _fail_outdated(package_id)
    with transaction.atomic():
        # Read under the lock: a ready package taken for a rebuild leaves
        # the storage tally here, and comes back when it is published again.
        prior = (
            HlsPackage.objects.select_for_update()
            .filter(claimable, pk=package_id)
            .only("status", "storage_backend", "files", "total_bytes")
            .first()
        )
        claimed = HlsPackage.objects.filter(claimable, pk=package_id).update(
            status=PackageStatus.PROCESSING,
            lease_until=now + timedelta(seconds=settings.HLS_PACKAGE_LEASE_SECONDS),
            started_at=now,
            finished_at=None,
            error_code="",
            error="",
            # Built again, it is no longer on its way out.
            superseded_at=None,
            attempts=F("attempts") + 1,
        )
        if claimed and prior is not None and prior.status == PackageStatus.READY:
            package_tally_add(prior, sign=-1)
    package = HlsPackage.objects.select_related("track").filter(pk=package_id).first()
    if package is None or not claimed:
        return package
    track = package.track
    backend = track.storage_backend
    storage = storage_for(backend)
    stored: list[str] = []
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="veza-hls-") as tmp:
            workdir = Path(tmp)
            source = _local_source(track, storage, workdir)
            # Imported here: PyAV (FFmpeg) is for the task workers that
            # package, not for every process that imports this module.
            from streaming.packaging import package_audio

            output = package_audio(
                source=source,
                workdir=workdir / "package",
                ladder=package.settings["ladder"],
                segment_seconds=package.settings["segment_seconds"],
                max_seconds=settings.HLS_PACKAGE_MAX_SECONDS,
            )
            metrics.HLS_PACKAGE_SECONDS.labels("encode").observe(output.encode_seconds)
            _write_playlists(output, workdir / "package")
            store_started = time.perf_counter()
            stored_files = _store_package(
                storage, package.directory, workdir / "package", output, stored
            )
            files = {name: size for name, (size, _) in stored_files.items()}
            etags = {name: etag for name, (_, etag) in stored_files.items() if etag}
            store_seconds = time.perf_counter() - store_started
            metrics.HLS_PACKAGE_SECONDS.labels("store").observe(store_seconds)
    except PackagingError as exc:
        return _fail(package, storage, stored, exc.code, exc.message)
    except StorageUnavailable as exc:
        return _fail(package, storage, stored, exc.code, exc.message)
    except Exception as exc:
        logger.exception("packaging %s failed", package.content_hash)
        _fail(package, storage, stored, "internal_error", repr(exc))
        raise
    with transaction.atomic():
        published = HlsPackage.objects.filter(
            pk=package_id, status=PackageStatus.PROCESSING
        ).update(
            status=PackageStatus.READY,
            storage_backend=backend,
            renditions=[r.as_dict() for r in output.renditions],
            files=files,
            etags=etags,
            duration_seconds=output.duration,
            segment_count=sum(len(r.segments) for r in output.renditions),
            total_bytes=sum(files.values()),
            loudness_lufs=output.loudness_lufs,
            true_peak_dbtp=output.true_peak_dbtp,
            encode_seconds=output.encode_seconds,
            store_seconds=store_seconds,
            lease_until=None,
            finished_at=timezone.now(),
            superseded_at=None,
        )
        if published:
            tally_add(
                kind=PACKAGE_TALLY,
                backend=backend,
                rows=1,
                files=len(files),
                bytes=sum(files.values()),
            )
            _supersede(package)
        _forget_serving(package.content_hash)
    if not published:
        # Deleted (with its track) or taken over while we worked: no bytes
        # without their row.
        _delete_files(storage, stored)
        return HlsPackage.objects.filter(pk=package_id).first()
    metrics.HLS_PACKAGES.labels("ready").inc()
    logger.info(
        "packaged %s in %.1fs (%s)",
        package.content_hash,
        time.perf_counter() - started,
        backend,
    )
    package.refresh_from_db()
    return package


def superseded_grace_seconds() -> int:
    """How long a superseded package keeps serving: HLS_SUPERSEDED_GRACE_SECONDS,
    but never less than a player can hold its URLs: the longest URL
    lifetime, plus as long as a shared cache may keep a playlist (max-age or
    s-maxage, and stale-while-revalidate or stale-if-error past it)."""
    directives = dict(
        re.findall(r"([a-z-]+)=(\d+)", settings.CDN_CACHE_CONTROL_PLAYLISTS)
    )
    fresh = max(int(directives.get(k, 0)) for k in ("max-age", "s-maxage"))
    stale = max(
        int(directives.get(k, 0)) for k in ("stale-while-revalidate", "stale-if-error")
    )
    floor = max(settings.HLS_URL_TTL, settings.CDN_TOKEN_TTL) + fresh + stale
    return max(int(settings.HLS_SUPERSEDED_GRACE_SECONDS), floor)


def _fail_outdated(package_id: int) -> None:
    outdated = HlsPackage.objects.filter(
        pk=package_id, status__in=[PackageStatus.PENDING, PackageStatus.FAILED]
    ).exclude(settings__packager=PACKAGER_VERSION)
    if outdated.update(
        status=PackageStatus.FAILED,
        error_code="outdated",
        error=f"Made for another packager; this release builds version "
        f"{PACKAGER_VERSION} (package_hls builds the track's current package).",
        lease_until=None,
        finished_at=timezone.now(),
    ):
        logger.warning("package %s is for another packager: not built", package_id)


def _unsupersede(package: HlsPackage) -> HlsPackage:
    """A superseded package that is current again: live, and the others of
    its track superseded in turn (called under the row's lock)."""
    HlsPackage.objects.filter(pk=package.pk).update(superseded_at=None)
    package.superseded_at = None
    _supersede(package)
    _forget_serving(package.content_hash)
    return package


def _supersede(package: HlsPackage) -> None:
    """Mark the older ready packages of `package`'s track superseded (in the
    publishing transaction) and schedule their retirement.

    A package built for other settings than the current ones (a worker of
    the previous release finishing late) supersedes nothing, and is itself
    superseded when the current package is ready.
    """
    now = timezone.now()
    # The track's row lock: two packages of one track published at once
    # would each see nothing to supersede, and both stay live.
    Track.objects.select_for_update().filter(pk=package.track_id).first()
    current = hls_content_hash(
        track=package.track, package_settings=hls_package_settings()
    )
    of_track = HlsPackage.objects.filter(
        track_id=package.track_id,
        status=PackageStatus.READY,
        superseded_at__isnull=True,
    )
    if package.content_hash == current:
        ids = list(of_track.exclude(pk=package.pk).values_list("pk", flat=True))
    elif of_track.filter(content_hash=current).exists():
        ids = [package.pk]
    else:
        ids = []
    if not ids:
        return
    HlsPackage.objects.filter(pk__in=ids).update(superseded_at=now)
    from streaming.tasks import hls_package_retire_later

    when = now + timedelta(seconds=superseded_grace_seconds())
    transaction.on_commit(lambda: hls_package_retire_later(package_ids=ids, when=when))


@dataclass(frozen=True)
class Retired:
    """What a retirement removed: packages, their files and bytes."""

    packages: int = 0
    files: int = 0
    bytes: int = 0
    # Due, but their files could not be deleted now: left for the next sweep.
    failed: int = 0

    def __add__(self, other: Retired) -> Retired:
        return Retired(
            self.packages + other.packages,
            self.files + other.files,
            self.bytes + other.bytes,
            self.failed + other.failed,
        )


def hls_package_retire(*, package_id: int, now: datetime | None = None) -> Retired:
    """Delete a package superseded more than the grace period ago, files first.

    Only while its track has another package ready and live: a track never
    loses the last package it can play. The row is locked while its files
    go, so a rebuild of the same directory waits for it. Files first: if
    this stops half-way (a crash, the store unavailable, which raises) the
    row stays, superseded, and the next sweep finishes it; there are never
    objects without a row.
    """
    cutoff = (now or timezone.now()) - timedelta(seconds=superseded_grace_seconds())
    with transaction.atomic():
        # skip_locked: a rebuild of it (or another sweep) holds it; the
        # next sweep sees it again.
        package = (
            HlsPackage.objects.select_for_update(skip_locked=True)
            .filter(
                pk=package_id, status=PackageStatus.READY, superseded_at__lte=cutoff
            )
            .first()
        )
        if package is None:
            return Retired()
        replaced = (
            HlsPackage.objects.filter(
                track_id=package.track_id,
                status=PackageStatus.READY,
                superseded_at__isnull=True,
            )
            .exclude(pk=package.pk)
            .exists()
        )
        if not replaced:
            return Retired()
        keys = [package.directory + name for name in package.files]
        for backend in storage_backends_in_use():
            storage_for(backend).remove_many(keys)
        # The files are gone already: the delete signal need not remove them.
        package.files_removed = True  # type: ignore[attr-defined]
        package.delete()
    metrics.HLS_PACKAGES_RETIRED.inc()
    logger.info("retired superseded package %s", package.content_hash)
    return Retired(1, len(keys), package.total_bytes)


def hls_packages_retire_due(
    *, now: datetime | None = None, limit: int | None = None
) -> Retired:
    """Retire the packages whose grace period is over, longest overdue
    first, at most `limit` (the sweep; the partial index on superseded_at
    reads only superseded rows). One that cannot be deleted now (the store
    unavailable) is counted in `failed` and left, superseded, for the next
    sweep."""
    cutoff = (now or timezone.now()) - timedelta(seconds=superseded_grace_seconds())
    due = (
        HlsPackage.objects.filter(superseded_at__lte=cutoff)
        .order_by("superseded_at")
        .values_list("pk", flat=True)
    )
    if limit is not None:
        due = due[:limit]
    total = Retired()
    for package_id in list(due.iterator(chunk_size=500)):
        try:
            total += hls_package_retire(package_id=package_id, now=now)
        except StorageUnavailable:
            logger.warning(
                "could not retire package %s: storage unavailable", package_id
            )
            total += Retired(failed=1)
    return total


def hls_package_retire_due_at(*, package_id: int) -> datetime | None:
    """When `package_id` may be retired (None: it is not superseded)."""
    superseded = (
        HlsPackage.objects.filter(pk=package_id)
        .values_list("superseded_at", flat=True)
        .first()
    )
    if superseded is None:
        return None
    return superseded + timedelta(seconds=superseded_grace_seconds())


def _local_source(track: Track, storage: MediaStorage, workdir: Path) -> Path:
    key = track.storage_key or ""
    local = storage.local_path(key)
    if local is not None:
        if not local.exists():
            raise PackagingError("source_missing", f"{key} is not on {storage.backend}")
        return local
    path = workdir / "source"
    with path.open("wb") as out:
        for chunk in storage.read(key, 0, track.size_bytes - 1):
            out.write(chunk)
    return path


def _write_playlists(output: PackageOutput, directory: Path) -> None:
    # The waveform beside the playlists: compact JSON, as players fetch it.
    (directory / WAVEFORM_NAME).write_text(
        json.dumps(output.waveform, separators=(",", ":"))
    )
    for rendition in output.renditions:
        (directory / rendition.name / PLAYLIST_NAME).write_text(
            media_playlist(rendition)
        )
    (directory / MASTER_NAME).write_text(master_playlist(output.renditions))


def _store_package(
    storage: MediaStorage,
    prefix: str,
    directory: Path,
    output: PackageOutput,
    stored: list[str],
) -> dict[str, tuple[int, str]]:
    """Store every file, in publish order; returns name -> (size, ETag).

    Segments and init files first, then media playlists, then the master, so
    no playlist is ever readable before what it names (a CDN would cache the
    404). `stored` collects the keys written, for cleanup on failure.
    """
    media = [f"{r.name}/{name}" for r in output.renditions for name in r.files]
    playlists = [f"{r.name}/{PLAYLIST_NAME}" for r in output.renditions]
    playlists.append(WAVEFORM_NAME)
    files: dict[str, tuple[int, str]] = {}
    for group in (media, playlists, [MASTER_NAME]):
        files.update(_store_files(storage, prefix, directory, group, stored))
    return files


def _store_files(
    storage: MediaStorage,
    prefix: str,
    directory: Path,
    names: list[str],
    stored: list[str],
) -> dict[str, tuple[int, str]]:
    # On S3 through the native engine (about a hundred small files, several
    # in flight), each PUT's ETag checked against the MD5 read here.
    def put(name: str) -> tuple[str, tuple[int, str]]:
        path = directory / name
        digests, data = storage.read_for_copy(path)
        etag = storage.put_file(
            prefix + name,
            path,
            digests,
            content_type=hls_content_type(name),
            cache_control=cdn_cache_control(name=name),
            data=data,
        )
        stored.append(prefix + name)
        return name, (digests.size, etag)

    if storage.backend == "local":
        return dict(put(name) for name in names)
    with ThreadPoolExecutor(_S3_UPLOAD_THREADS) as pool:
        return dict(pool.map(put, names))


def _fail(
    package: HlsPackage,
    storage: MediaStorage,
    stored: list[str],
    code: str,
    message: str,
) -> HlsPackage:
    _delete_files(storage, stored)
    HlsPackage.objects.filter(pk=package.pk, status=PackageStatus.PROCESSING).update(
        status=PackageStatus.FAILED,
        error_code=code,
        error=message[:500],
        lease_until=None,
        finished_at=timezone.now(),
    )
    _forget_serving(package.content_hash)
    metrics.HLS_PACKAGES.labels(code).inc()
    logger.warning("packaging %s failed: %s: %s", package.content_hash, code, message)
    package.refresh_from_db()
    return package


def _delete_files(storage: MediaStorage, keys: Iterable[str]) -> None:
    try:
        storage.remove_many(list(keys))
    except (StorageUnavailable, OSError):
        logger.warning("could not delete files from %s", storage.backend, exc_info=True)


def hls_package_delete_files(*, directory: str, names: Iterable[str]) -> None:
    """Remove a package's files (after its row is gone) from every backend
    in use: a storage migration may have copied them before the row went."""
    keys = [directory + name for name in names]
    for backend in storage_backends_in_use():
        _delete_files(storage_for(backend), keys)
