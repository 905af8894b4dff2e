"""Writes of resumable upload sessions: create, append, process, end, expire."""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from mediastore.backends import s3_storage
from mediastore.errors import StorageUnavailable
from mediastore.files import BucketCopy
from tracks.errors import (
    ChecksumMismatch,
    EmptyUpload,
    InvalidParts,
    S3UploadsUnavailable,
    TooManyUploads,
    TrackDeletedWhileProcessing,
    UploadBusy,
    UploadExpired,
    UploadLengthExceeded,
    UploadLengthMismatch,
    UploadNotReceiving,
    UploadOffsetMismatch,
)
from tracks.models import (
    Track,
    TrackStatus,
    UploadSession,
    UploadStatus,
    UploadTransport,
    Visibility,
)
from tracks.probe import ProbeResult, probe_audio
from tracks.selectors import upload_allowance_of
from tracks.services import (
    clean_filename,
    object_delete_quietly,
    track_create,
    track_create_processing,
    upload_quota_lock,
)
from tracks.tus import Checksum
from tracks.uploads import StagedUpload, stage_file
from veza.errors import DomainError, PayloadTooLarge

if TYPE_CHECKING:
    from mediastore.s3 import S3MediaStorage

logger = logging.getLogger(__name__)

READ_SIZE = 1024 * 1024
# S3's limits on multipart uploads, and how long a part's URL is good for.
S3_MAX_PARTS = 10_000
PART_URL_TTL = 3600


def staging_path(session_id: Any) -> Path:
    """Where a session's bytes wait, on local disk whatever the backend."""
    return Path(settings.VAR_DIR) / "uploads" / "sessions" / str(session_id)


def _expiry(now: dt.datetime) -> dt.datetime:
    return now + dt.timedelta(seconds=settings.UPLOAD_SESSION_TTL)


def _session_open(
    *,
    owner: Any,
    length: int,
    filename: str,
    title: str,
    visibility: str,
    transport: str,
) -> UploadSession:
    """The session's row, counted against the owner's limits (with their
    other open sessions) from now on."""
    if length == 0:
        raise EmptyUpload()
    if length > settings.TRACK_MAX_UPLOAD_BYTES:
        raise PayloadTooLarge(details={"max_bytes": settings.TRACK_MAX_UPLOAD_BYTES})
    with transaction.atomic():
        quota = upload_quota_lock(owner)
        allowance = upload_allowance_of(quota, stored_bytes=quota.stored_bytes)
        if allowance.open_uploads >= settings.UPLOAD_MAX_OPEN_SESSIONS:
            raise TooManyUploads(
                details={"max_open_uploads": settings.UPLOAD_MAX_OPEN_SESSIONS}
            )
        allowance.refuse_if_over(size=length)
        return UploadSession.objects.create(
            owner=owner,
            transport=transport,
            length=length,
            filename=clean_filename(filename) if filename else "",
            title=title,
            visibility=visibility,
            expires_at=_expiry(allowance.now),
        )


def upload_session_create(
    *,
    owner: Any,
    length: int,
    filename: str = "",
    title: str = "",
    visibility: str = Visibility.PRIVATE,
) -> UploadSession:
    """Open a tus session for `length` bytes, staged in a file on disk."""
    session = _session_open(
        owner=owner,
        length=length,
        filename=filename,
        title=title,
        visibility=visibility,
        transport=UploadTransport.TUS,
    )
    path = staging_path(session.pk)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    return session


def _bucket() -> S3MediaStorage:
    if settings.TRACK_STORAGE_BACKEND != "s3":
        raise S3UploadsUnavailable()
    return s3_storage()


def s3_multipart_start(
    *,
    owner: Any,
    length: int,
    content_type: str,
    filename: str = "",
    title: str = "",
    visibility: str = Visibility.PRIVATE,
) -> UploadSession:
    """Open a session whose bytes the client sends straight to the bucket,
    as a multipart upload of an object under uploads/ that the session owns."""
    bucket = _bucket()
    session = _session_open(
        owner=owner,
        length=length,
        filename=filename,
        title=title,
        visibility=visibility,
        transport=UploadTransport.S3,
    )
    key = f"uploads/{session.pk}"
    try:
        upload_id = bucket.multipart_create(
            key, content_type=content_type or "application/octet-stream"
        )
    except BaseException:
        session.delete()
        raise
    session.s3_key, session.s3_upload_id = key, upload_id
    session.save(update_fields=["s3_key", "s3_upload_id", "updated_at"])
    return session


def s3_multipart_sign_part(
    *, session: UploadSession, part_number: int
) -> tuple[str, dt.datetime]:
    """A presigned UploadPart URL for one part, and when it expires."""
    upload_session_check_open(session)
    if not 1 <= part_number <= S3_MAX_PARTS:
        raise InvalidParts(f"A part number is 1 to {S3_MAX_PARTS}.")
    expires_in = min(settings.UPLOAD_SESSION_TTL, PART_URL_TTL)
    url = _bucket().multipart_part_url(
        session.s3_key,
        upload_id=session.s3_upload_id,
        part_number=part_number,
        expires_in=expires_in,
    )
    # A client signing parts is still uploading: the session stays alive.
    session.expires_at = _expiry(timezone.now())
    session.save(update_fields=["expires_at", "updated_at"])
    return url, timezone.now() + dt.timedelta(seconds=expires_in)


def s3_multipart_parts(*, session: UploadSession) -> list[dict[str, Any]]:
    """The parts the bucket holds: where a client resumes."""
    upload_session_check_open(session)
    return list(
        _bucket().multipart_parts(session.s3_key, upload_id=session.s3_upload_id)
    )


def s3_multipart_complete(*, session: UploadSession, parts: Any) -> UploadSession:
    """Join the parts into the staging object, check its size, queue processing."""
    upload_session_check_open(session)
    bucket = _bucket()
    bucket.multipart_complete(
        session.s3_key, upload_id=session.s3_upload_id, parts=_checked_parts(parts)
    )
    stored = bucket.stat(session.s3_key)
    if stored is None or stored.size != session.length:
        object_delete_quietly(backend="s3", key=session.s3_key)
        _fail(session, UploadLengthMismatch.code, UploadLengthMismatch.default_message)
        session.save(
            update_fields=["status", "error_code", "error_message", "updated_at"]
        )
        raise UploadLengthMismatch(
            details={"length": session.length, "received": stored.size if stored else 0}
        )
    return _record(session, session.length - session.offset)


def _checked_parts(parts: Any) -> list[dict[str, Any]]:
    """`[{"PartNumber": int, "ETag": str}, ...]`, in ascending order."""
    if not isinstance(parts, list) or not parts:
        raise InvalidParts()
    checked = []
    for part in parts:
        if (
            not isinstance(part, dict)
            or not isinstance(part.get("PartNumber"), int)
            or isinstance(part.get("PartNumber"), bool)
            or not isinstance(part.get("ETag"), str)
            or not 1 <= part["PartNumber"] <= S3_MAX_PARTS
        ):
            raise InvalidParts()
        checked.append({"PartNumber": part["PartNumber"], "ETag": part["ETag"]})
    numbers = [p["PartNumber"] for p in checked]
    if numbers != sorted(set(numbers)):
        raise InvalidParts("Parts are listed once each, in ascending order.")
    return checked


def _release_staging(session: UploadSession) -> None:
    """Delete what a session staged: its file, or its multipart upload and object."""
    staging_path(session.pk).unlink(missing_ok=True)
    if session.transport == UploadTransport.S3 and session.s3_key:
        try:
            bucket = s3_storage()
            bucket.multipart_abort(session.s3_key, upload_id=session.s3_upload_id)
            bucket.remove(session.s3_key)
        except StorageUnavailable:
            logger.warning(
                "could not release staged upload %s", session.s3_key, exc_info=True
            )


def upload_session_refuse_expired(session: UploadSession) -> None:
    """Raise 410 for an expired session (expiring it first if it is due)."""
    if (
        session.status == UploadStatus.RECEIVING
        and session.expires_at <= timezone.now()
    ):
        upload_session_expire(session=session)
    if session.status == UploadStatus.EXPIRED:
        raise UploadExpired()


def upload_session_check_open(session: UploadSession) -> None:
    """Raise if the session can take no more bytes (expired, or complete)."""
    upload_session_refuse_expired(session)
    if session.status != UploadStatus.RECEIVING:
        raise UploadNotReceiving(details={"status": session.status})


def upload_session_append(
    *,
    session: UploadSession,
    offset: int,
    body: IO[bytes] | None,
    declared_length: int | None,
    checksum: Checksum | None,
) -> UploadSession:
    """Write a chunk at exactly the session's offset and make it durable.

    Bytes a dropped connection did deliver are kept (a client resumes after
    them) unless a checksum was sent, which only the whole chunk can match.
    The last byte queues the processing task.
    """
    upload_session_check_open(session)
    if offset != session.offset:
        raise UploadOffsetMismatch(details={"offset": session.offset})
    room = session.length - offset
    if declared_length is not None and declared_length > room:
        raise UploadLengthExceeded(details={"remaining_bytes": room})
    path = staging_path(session.pk)
    with path.open("r+b") as staged:
        try:
            fcntl.flock(staged, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UploadBusy() from None
        # Under the lock: the offset another request may have moved since.
        session.refresh_from_db()
        upload_session_check_open(session)
        if offset != session.offset:
            raise UploadOffsetMismatch(details={"offset": session.offset})
        # Bytes past the recorded offset are from a request that died
        # before recording them: not acknowledged, so not kept.
        staged.truncate(offset)
        staged.seek(offset)
        received, too_long = _copy(body, staged, room=room, checksum=checksum)
        if too_long or (checksum is not None and received.digest() != checksum.digest):
            staged.truncate(offset)
            if too_long:
                raise UploadLengthExceeded(details={"remaining_bytes": room})
            raise ChecksumMismatch()
        staged.flush()
        os.fsync(staged.fileno())
        written = staged.tell() - offset
    return _record(session, written)


def _wants_md5(session: UploadSession) -> bool:
    """Whether storing a tus upload wants its MD5 (a single S3 PUT)."""
    return (
        settings.TRACK_STORAGE_BACKEND == "s3"
        and session.length < settings.AWS_S3_MULTIPART_THRESHOLD
    )


def _copy(
    body: IO[bytes] | None, staged: IO[bytes], *, room: int, checksum: Checksum | None
) -> tuple[Any, bool]:
    """Copy the body into the file: (running digest, went past `room`)."""
    digest = checksum.new() if checksum is not None else None
    copied = 0
    while body is not None:
        try:
            chunk = body.read(min(READ_SIZE, room - copied + 1))
        except OSError:
            break  # the client went away: keep what arrived
        if not chunk:
            break
        if copied + len(chunk) > room:
            return digest, True
        staged.write(chunk)
        copied += len(chunk)
        if digest is not None:
            digest.update(chunk)
    return digest, False


def _record(session: UploadSession, written: int) -> UploadSession:
    now = timezone.now()
    session.offset += written
    session.expires_at = _expiry(now)
    fields = ["offset", "expires_at", "updated_at"]
    complete = session.offset == session.length
    with transaction.atomic():
        if complete:
            # The track exists from now on, `processing` until the task ends.
            session.status = UploadStatus.PROCESSING
            session.track = track_create_processing(
                owner_id=session.owner_id,
                length=session.length,
                filename=session.filename,
                title=session.title,
                visibility=session.visibility,
            )
            fields += ["status", "track"]
        session.save(update_fields=fields)
        if complete:
            session_id = str(session.pk)
            transaction.on_commit(lambda: _enqueue_processing(session_id))
    return session


def _enqueue_processing(session_id: str) -> None:
    from tracks.tasks import upload_session_process_task

    upload_session_process_task.enqueue(session_id=session_id)


def upload_session_process(*, session_id: str) -> UploadSession:
    """Turn a complete session's bytes into a track: the same checks and
    storage as a one-request upload. Ready with its track, or failed with the
    refusal's code; either way the staged bytes go."""
    session = UploadSession.objects.select_related("owner").get(pk=session_id)
    if session.status != UploadStatus.PROCESSING:
        return session
    try:
        staged, probe = _staged_and_probed(session)
        try:
            if session.track is None:  # its owner deleted it meanwhile
                raise TrackDeletedWhileProcessing()
            track = track_create(
                owner=session.owner,
                upload=staged,
                title=session.title or None,
                visibility=session.visibility,
                processing=session.track,
                probe=probe,
            )
        finally:
            staged.close()
    except DomainError as exc:
        _fail(session, exc.code, exc.message)
    except Exception:
        logger.exception("processing upload %s failed", session.pk)
        _fail(session, "internal_error", "The upload could not be processed.")
    else:
        session.status = UploadStatus.READY
        session.track = track
    finally:
        _release_staging(session)
    session.save(
        update_fields=["status", "error_code", "error_message", "track", "updated_at"]
    )
    return session


def _staged_and_probed(session: UploadSession) -> tuple[StagedUpload, ProbeResult]:
    """The session's bytes on the worker's disk, hashed and probed.

    Each reads the whole file, so they run at once, on two cores. An upload
    straight to the bucket is hashed as the worker downloads it (the web
    server never reads it), and storing it copies it within the bucket.
    """
    path = staging_path(session.pk)
    on_s3 = session.transport == UploadTransport.S3
    sha256, copy = None, None
    if on_s3:
        path.parent.mkdir(parents=True, exist_ok=True)
        downloaded = _bucket().download(session.s3_key, path)
        sha256, copy = downloaded.sha256, BucketCopy(session.s3_key, downloaded.etag)
    with ThreadPoolExecutor(max_workers=1) as pool:
        probing = pool.submit(
            probe_audio, path, max_seconds=settings.TRACK_MAX_DURATION_SECONDS
        )
        staged = stage_file(
            path,
            name=session.filename,
            want_md5=not on_s3 and _wants_md5(session),
            bucket_copy=copy,
            sha256_hex=sha256,
        )
        try:
            return staged, probing.result()
        except BaseException:
            staged.close()
            raise


def _fail(session: UploadSession, code: str, message: str) -> None:
    """Mark the session failed; its processing track goes (no row without bytes)."""
    session.status = UploadStatus.FAILED
    session.error_code, session.error_message = code, message[:500]
    if session.track_id is not None:
        Track.all_objects.filter(
            pk=session.track_id, status=TrackStatus.PROCESSING
        ).delete()
        session.track = None


def upload_session_terminate(*, session: UploadSession) -> None:
    """tus termination: the session and its staged bytes go (not its track)."""
    if session.status == UploadStatus.PROCESSING:
        raise UploadNotReceiving(
            "The upload is being processed; it cannot be cancelled now.",
            details={"status": session.status},
        )
    _release_staging(session)
    session.delete()


def upload_session_expire(*, session: UploadSession) -> None:
    session.status = UploadStatus.EXPIRED
    session.save(update_fields=["status", "updated_at"])
    _release_staging(session)


def upload_sessions_expire(*, now: dt.datetime | None = None) -> int:
    """Expire every session still receiving past its expiry; the count."""
    stale = UploadSession.objects.filter(
        status=UploadStatus.RECEIVING, expires_at__lte=now or timezone.now()
    )
    count = 0
    for session in stale.iterator():
        upload_session_expire(session=session)
        count += 1
    return count
