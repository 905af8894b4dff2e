"""Writes of HLS packages: request, build (package and publish), delete."""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from cdn.services import cdn_cache_control
from streaming.media_types import hls_content_type
from streaming.models import HlsPackage, PackageStatus
from streaming.packaging import (
    INIT_NAME,
    PLAYLIST_NAME,
    PackageOutput,
    PackagingError,
    package_audio,
)
from streaming.playlists import MASTER_NAME, master_playlist, media_playlist
from tracks.errors import StorageUnavailable
from tracks.models import Track
from tracks.storage import SourceFile, TrackStorage, hash_file, storage_for
from veza import metrics

logger = logging.getLogger(__name__)

# Part of the content hash: bump it when the packager's output changes, so
# new packages land in new directories and CDN caches never mix the two.
PACKAGER_VERSION = 1
# Parallel PUTs when storing a package on S3 (about 100 small files).
_S3_UPLOAD_THREADS = 8


def serving_cache_key(content_hash: str) -> str:
    """Where the origin caches what it needs to serve a package."""
    return f"veza:hls-serving:{content_hash}"


def _forget_serving(content_hash: str) -> None:
    # .update() sends no post_save, so writes here clear the entry themselves.
    key = serving_cache_key(content_hash)
    cache.delete(key)
    transaction.on_commit(lambda: cache.delete(key))


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
    from streaming.tasks import hls_package_task

    package_settings = hls_package_settings()
    content_hash = hls_content_hash(track=track, package_settings=package_settings)
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
        if (
            not created
            and not force
            and (package.status == PackageStatus.READY or busy)
        ):
            return package
        if not created:
            package.status = PackageStatus.PENDING
            package.error_code = ""
            package.error = ""
            package.lease_until = None
            package.save(update_fields=["status", "error_code", "error", "lease_until"])
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
    claimed = HlsPackage.objects.filter(claimable, pk=package_id).update(
        status=PackageStatus.PROCESSING,
        lease_until=now + timedelta(seconds=settings.HLS_PACKAGE_LEASE_SECONDS),
        started_at=now,
        finished_at=None,
        error_code="",
        error="",
        attempts=F("attempts") + 1,
    )
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
            output = package_audio(
                source=source,
                workdir=workdir / "package",
                ladder=package.settings["ladder"],
                segment_seconds=package.settings["segment_seconds"],
            )
            metrics.HLS_PACKAGE_SECONDS.labels("encode").observe(output.encode_seconds)
            _write_playlists(output, workdir / "package")
            store_started = time.perf_counter()
            files = _store_package(
                storage, package.directory, workdir / "package", output, stored
            )
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
            duration_seconds=output.duration,
            segment_count=sum(len(r.segments) for r in output.renditions),
            total_bytes=sum(files.values()),
            loudness_lufs=output.loudness_lufs,
            true_peak_dbtp=output.true_peak_dbtp,
            encode_seconds=output.encode_seconds,
            store_seconds=store_seconds,
            lease_until=None,
            finished_at=timezone.now(),
        )
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


def _local_source(track: Track, storage: TrackStorage, workdir: Path) -> Path:
    key = track.storage_key or ""
    local = storage.local_path(key)
    if local is not None:
        if not local.exists():
            raise PackagingError("source_missing", f"{key} is not on {storage.name}")
        return local
    path = workdir / "source"
    with path.open("wb") as out:
        for chunk in storage.read(key, 0, track.size_bytes - 1):
            out.write(chunk)
    return path


def _write_playlists(output: PackageOutput, directory: Path) -> None:
    for rendition in output.renditions:
        (directory / rendition.name / PLAYLIST_NAME).write_text(
            media_playlist(rendition)
        )
    (directory / MASTER_NAME).write_text(master_playlist(output.renditions))


def _store_package(
    storage: TrackStorage,
    prefix: str,
    directory: Path,
    output: PackageOutput,
    stored: list[str],
) -> dict[str, int]:
    """Store every file, in publish order; returns name -> size.

    Segments and init files first, then media playlists, then the master, so
    no playlist is ever readable before what it names (a CDN would cache the
    404). `stored` collects the keys written, for cleanup on failure.
    """
    media = [
        f"{r.name}/{name}"
        for r in output.renditions
        for name in [INIT_NAME, *(s.name for s in r.segments)]
    ]
    playlists = [f"{r.name}/{PLAYLIST_NAME}" for r in output.renditions]
    files: dict[str, int] = {}
    for group in (media, playlists, [MASTER_NAME]):
        files.update(_store_files(storage, prefix, directory, group, stored))
    return files


def _store_files(
    storage: TrackStorage,
    prefix: str,
    directory: Path,
    names: list[str],
    stored: list[str],
) -> dict[str, int]:
    def put(name: str) -> tuple[str, int]:
        path = directory / name
        size, sha256, md5 = hash_file(path)
        storage.put(
            prefix + name,
            SourceFile(
                path=path,
                size=size,
                sha256=sha256,
                md5_base64=md5,
                content_type=hls_content_type(name),
                cache_control=cdn_cache_control(name=name),
            ),
        )
        stored.append(prefix + name)
        return name, size

    if storage.name == "local":
        return dict(put(name) for name in names)
    with ThreadPoolExecutor(_S3_UPLOAD_THREADS) as pool:
        return dict(pool.map(put, names))


def _fail(
    package: HlsPackage,
    storage: TrackStorage,
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


def _delete_files(storage: TrackStorage, keys: Iterable[str]) -> None:
    for key in keys:
        try:
            storage.delete(key)
        except (StorageUnavailable, OSError):
            logger.warning("could not delete %s from %s", key, storage.name)


def hls_package_delete_files(
    *, backend: str, directory: str, names: Iterable[str]
) -> None:
    """Remove a package's files (after its row is gone)."""
    _delete_files(storage_for(backend), [directory + name for name in names])
