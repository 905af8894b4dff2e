"""Writes of tracks: create from an upload, update, delete."""

from __future__ import annotations

import logging
import time
import unicodedata
import uuid
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from mediastore.backends import storage_backends_in_use, storage_for
from mediastore.errors import StorageUnavailable
from mediastore.files import SourceFile
from mediastore.tally import tally_add
from tracks.errors import TrackDeletedWhileProcessing
from tracks.models import TRACKS_TALLY, Track, TrackStatus, UploadQuota, Visibility
from tracks.probe import ProbeResult, probe_audio
from tracks.selectors import track_bytes_owned, upload_allowance_of
from tracks.uploads import StagedUpload
from veza import metrics

logger = logging.getLogger(__name__)


def track_object_name(*, track_id: uuid.UUID, sha256: str, extension: str) -> str:
    """The deterministic name of a track's bytes, the same on every backend."""
    return f"tracks/{track_id}/{sha256}.{extension}"


def clean_filename(name: str) -> str:
    """The client's file name as a label: no directories, no control characters."""
    name = PureWindowsPath(PurePosixPath(name).name).name
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip()
    return name[:255] or "upload"


def track_title(title: str | None, filename: str) -> str:
    """The title given, else the file's name without its extension."""
    return (title or PurePosixPath(filename).stem or "Untitled")[:200]


def track_create(
    *,
    owner: Any,
    upload: StagedUpload,
    title: str | None = None,
    visibility: str = Visibility.PRIVATE,
    processing: Track | None = None,
    probe: ProbeResult | None = None,
) -> Track:
    """Probe, store and record an upload: the row exists only if the bytes do.

    With `processing` (a resumable upload's track row, made when its last
    byte arrived), that row is filled in and becomes ready instead. With
    `probe`, the upload was probed already.
    """
    started = time.monotonic()
    if probe is None:
        probe = probe_audio(
            upload.path, max_seconds=settings.TRACK_MAX_DURATION_SECONDS
        )
    backend = settings.TRACK_STORAGE_BACKEND
    storage = storage_for(backend)
    track_id = processing.pk if processing is not None else uuid.uuid4()
    filename = clean_filename(upload.name or "")
    key = track_object_name(
        track_id=track_id, sha256=upload.sha256, extension=probe.format.extension
    )
    etag = storage.put(
        key,
        SourceFile(
            path=upload.path,
            size=upload.size or 0,
            sha256=upload.sha256,
            md5_base64=upload.md5_base64,
            content_type=probe.format.mime_type,
            # The staged upload is deleted once stored: on local disk it is
            # moved into place, not copied.
            movable=True,
            bucket_copy=upload.bucket_copy if backend == "s3" else None,
        ),
    )
    columns = {
        "title": track_title(title, filename),
        "visibility": visibility,
        "original_filename": filename,
        "mime_type": probe.format.mime_type,
        "size_bytes": upload.size or 0,
        "sha256": upload.sha256,
        "duration_seconds": probe.duration_seconds,
        "storage_backend": backend,
        "storage_key": key,
        "storage_etag": etag,
        "storage_verified_at": timezone.now(),
        "status": TrackStatus.READY,
    }
    try:
        with transaction.atomic():
            upload_quota_charge(
                owner=owner,
                size=upload.size or 0,
                besides_track=processing.pk if processing is not None else None,
            )
            if processing is None:
                track = Track(id=track_id, owner=owner, **columns)
                track.full_clean()
                track.save(force_insert=True)
            else:
                track = _processing_track_locked(processing)
                for name, value in columns.items():
                    setattr(track, name, value)
                track.full_clean()
                track.save(update_fields=[*columns, "updated_at"])
            tally_add(
                kind=TRACKS_TALLY, backend=backend, rows=1, bytes=track.size_bytes
            )
    except BaseException:
        # No bytes without their row.
        object_delete_quietly(backend=backend, key=key)
        raise
    metrics.UPLOAD_BYTES.labels(backend).inc(track.size_bytes)
    metrics.UPLOAD_SECONDS.labels(backend).observe(time.monotonic() - started)
    return track


def _processing_track_locked(processing: Track) -> Track:
    track = (
        Track.all_objects.select_for_update()
        .filter(pk=processing.pk, status=TrackStatus.PROCESSING)
        .first()
    )
    if track is None:
        raise TrackDeletedWhileProcessing()
    return track


def track_create_processing(
    *, owner_id: Any, length: int, filename: str, title: str, visibility: str
) -> Track:
    """The row of a resumable upload whose bytes are all in: its owner sees
    it (`processing`; playback answers 409) until its processing ends."""
    return Track.all_objects.create(
        owner_id=owner_id,
        title=track_title(title, filename),
        visibility=visibility,
        original_filename=filename or "upload",
        mime_type="",
        size_bytes=length,
        sha256="",
        duration_seconds=0,
        storage_backend=settings.TRACK_STORAGE_BACKEND,
        status=TrackStatus.PROCESSING,
    )


def upload_quota_charge(*, owner: Any, size: int, besides_track: Any = None) -> None:
    """Count one more track of `size` bytes against `owner`'s limits, or raise.

    The user's resumable uploads under way count too, but for the one whose
    processing track is `besides_track` (this very upload). Call inside the
    transaction that creates the track: the lock on the user's quota row
    makes their uploads pass this one at a time, so two at once cannot both
    fit under a limit that has room for one.
    """
    quota = upload_quota_lock(owner)
    allowance = upload_allowance_of(
        quota, stored_bytes=quota.stored_bytes, besides_track=besides_track
    )
    allowance.refuse_if_over(size=size)
    today = allowance.now.date()
    if quota.day != today:
        quota.day, quota.day_bytes, quota.day_tracks = today, 0, 0
    quota.stored_bytes += size
    quota.day_bytes += size
    quota.day_tracks += 1
    quota.save(update_fields=["stored_bytes", "day", "day_bytes", "day_tracks"])


def upload_quota_lock(owner: Any) -> UploadQuota:
    """The user's quota row, locked until the transaction ends (made if new)."""
    try:
        return UploadQuota.objects.select_for_update().get(user=owner)
    except UploadQuota.DoesNotExist:
        pass
    try:
        # The first upload: usage so far is whatever tracks the user has.
        with transaction.atomic():
            return UploadQuota.objects.create(
                user=owner, stored_bytes=track_bytes_owned(user=owner)
            )
    except IntegrityError:
        # Another upload of the same user made it first.
        return UploadQuota.objects.select_for_update().get(user=owner)


@transaction.atomic
def track_update(
    *, track: Track, title: str | None = None, visibility: str | None = None
) -> Track:
    fields = []
    if title is not None:
        track.title = title
        fields.append("title")
    if visibility is not None:
        track.visibility = visibility
        fields.append("visibility")
    if fields:
        track.full_clean()
        track.save(update_fields=[*fields, "updated_at"])
    return track


@transaction.atomic
def track_take_down(*, track: Track, reason: str) -> Track:
    """Stop every playback route of `track` (451) and its CDN URLs being issued.

    URLs already issued stay valid until they expire (TRACK_URL_TTL,
    HLS_URL_TTL); purge the CDN to cut them short.
    """
    track.taken_down_at = timezone.now()
    track.takedown_reason = reason[:500]
    track.save(update_fields=["taken_down_at", "takedown_reason", "updated_at"])
    logger.info("track %s taken down: %s", track.pk, reason)
    return track


@transaction.atomic
def track_restore(*, track: Track) -> Track:
    """Undo a takedown."""
    track.taken_down_at = None
    track.takedown_reason = ""
    track.save(update_fields=["taken_down_at", "takedown_reason", "updated_at"])
    logger.info("track %s restored", track.pk)
    return track


@transaction.atomic
def track_delete(*, track: Track) -> None:
    """Delete the row; its bytes go once the deletion has committed, from
    every backend: a storage migration may have copied them already (it
    removes a copy it finishes after this, see tracks.migration.settling)."""
    key = track.storage_key
    track.delete()
    if key:
        transaction.on_commit(lambda: track_bytes_delete(key=key))


def track_bytes_delete(*, key: str) -> None:
    """Remove a track's object from every backend in use, quietly."""
    for backend in storage_backends_in_use():
        object_delete_quietly(backend=backend, key=key)


def object_delete_quietly(*, backend: str, key: str) -> None:
    """Delete one object, logging (not raising) when the storage fails."""
    try:
        storage_for(backend).remove(key)
    except (StorageUnavailable, OSError):
        # The row is gone; an orphan object is found by the storage audit
        # (`migrate_storage --verify-only`), so a failure here is only logged.
        logger.warning("could not delete %s from %s", key, backend, exc_info=True)
