"""Copying: a row's bytes and its attached files to the target, verified.

Runs in worker threads and touches no rows: what it found goes back to the
runner as an `Outcome`, which `settling` records. To S3 every file is read
once (size, SHA-256 and MD5; part MD5s for multipart sizes), checked against
what the row records, and PUT through the native engine, whose ETag must
match the MD5 (`mediastore.transfer`). To local disk the object is streamed
into a temporary file, checked against the row's SHA-256 (or the ETag),
fsynced and renamed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mediastore.backends import local_storage
from mediastore.digests import etag_verifies, etag_verifies_file
from mediastore.errors import CorruptObject, StorageUnavailable
from mediastore.files import read_for_copy
from mediastore.transfer import s3_transfer
from tracks.attachments import Attachment
from tracks.migration.plan import track_key
from tracks.models import StorageBackend, Track

# Why a row could not be moved; stable codes shown in the admin and --json.
MISSING_SOURCE = "missing_source"
CORRUPT_SOURCE = "corrupt_source"
STORAGE_ERROR = "storage_error"
LOST_LEASE = "lost_lease"
MISSING_REASONS = frozenset({MISSING_SOURCE})


def missing_file_reason(provider: str) -> str:
    """The reason of a track whose attached file (e.g. a package's) is missing."""
    return f"missing_{provider}_file"


def corrupt_file_reason(provider: str) -> str:
    return f"corrupt_{provider}_file"


def is_missing_reason(reason: str) -> bool:
    """Whether `reason` says a source file is missing (what --allow-missing
    lets through): the original's or an attached file's."""
    return reason in MISSING_REASONS or (
        reason.startswith("missing_") and reason.endswith("_file")
    )


@dataclass
class AttachedCount:
    """Attached files of one provider: copied (and their bytes), or found
    already on the target and verified."""

    files: int = 0
    bytes: int = 0
    already_there: int = 0


@dataclass
class Outcome:
    track_id: Any
    kind: str  # moved, already_there, failed
    size: int = 0
    reason: str = ""
    detail: str = ""
    # The verified ETag of the original on S3 ("" on local disk).
    etag: str = ""
    # The track's attached groups, every file verified on the target.
    attachments: list[Attachment] = field(default_factory=list)
    attached: dict[str, AttachedCount] = field(default_factory=dict)
    # Every object name written on the target, with its verified ETag.
    written: dict[str, str] = field(default_factory=dict)


class _FileFailed(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _original_to_s3(track: Track, key: str, outcome: Outcome) -> None:
    # The engine alone: a copy to S3 never needs boto3 (a fifth of a
    # second to load) nor the Django storage around it.
    transfer = s3_transfer()
    path = local_storage().local_path(key)
    try:
        digests, data = read_for_copy(path, part_size_for=transfer.part_size_for)
    except FileNotFoundError:
        raise _FileFailed(MISSING_SOURCE, f"no file at {key}") from None
    if digests.size != track.size_bytes or digests.sha256 != track.sha256:
        raise _FileFailed(
            CORRUPT_SOURCE,
            f"file has {digests.size} bytes, sha256 {digests.sha256[:12]}…",
        )
    # Only a row tried before can have an object already; skipping the
    # HEAD for fresh rows saves a request per file.
    if getattr(track, "resumed", True):
        existing = transfer.head(key)
        if existing and etag_verifies(existing.etag, digests):
            # A re-run after a crash: the object is whole, flip without uploading.
            outcome.kind = "already_there"
            outcome.etag = existing.etag
            return
    outcome.etag = transfer.put(
        key, path if data is None else data, digests, content_type=track.mime_type
    )
    outcome.written[key] = outcome.etag
    outcome.size = digests.size


def _original_to_local(track: Track, key: str, outcome: Outcome) -> None:
    local, transfer = local_storage(), s3_transfer()
    path = local.local_path(key)
    if path.is_file() and path.stat().st_size == track.size_bytes:
        digests, _ = local.read_for_copy(path)
        if digests.sha256 == track.sha256:
            outcome.kind = "already_there"
            return
    found = transfer.get(key)
    if found is None:
        raise _FileFailed(MISSING_SOURCE, f"no object {key}")
    chunks, _ = found
    try:
        local.write_verified(key, chunks, size=track.size_bytes, sha256=track.sha256)
    except CorruptObject as exc:
        raise _FileFailed(CORRUPT_SOURCE, str(exc)) from exc
    outcome.written[key] = ""
    outcome.size = track.size_bytes


def _attached_to_s3(
    group: Attachment, count: AttachedCount, outcome: Outcome, *, resumed: bool
) -> None:
    local, transfer = local_storage(), s3_transfer()
    for file in group.files:
        path = local.local_path(file.key)
        try:
            digests, data = read_for_copy(path, part_size_for=transfer.part_size_for)
        except FileNotFoundError:
            raise _FileFailed(
                missing_file_reason(group.provider),
                f"{group.provider} {group.label}: no file at {file.key}",
            ) from None
        if digests.size != file.size or (file.sha256 and digests.sha256 != file.sha256):
            raise _FileFailed(
                corrupt_file_reason(group.provider),
                f"{group.provider} {group.label}: {file.key} has {digests.size} "
                f"bytes, sha256 {digests.sha256[:12]}…, expected {file.size} bytes",
            )
        # As for originals, only a row tried before can have copies already.
        if resumed:
            existing = transfer.head(file.key)
            if existing and etag_verifies(existing.etag, digests):
                count.already_there += 1
                outcome.written[file.key] = existing.etag
                continue
        outcome.written[file.key] = transfer.put(
            file.key,
            path if data is None else data,
            digests,
            content_type=file.content_type,
            cache_control=file.cache_control,
        )
        count.files += 1
        count.bytes += digests.size


def _attached_to_local(
    group: Attachment, count: AttachedCount, outcome: Outcome
) -> None:
    local, transfer = local_storage(), s3_transfer()
    for file in group.files:
        path = local.local_path(file.key)
        if (
            file.etag
            and path.is_file()
            and path.stat().st_size == file.size
            and etag_verifies_file(file.etag, path)
        ):
            # Left there by an earlier move the other way (not yet purged).
            count.already_there += 1
            continue
        found = transfer.get(file.key)
        if found is None:
            raise _FileFailed(
                missing_file_reason(group.provider),
                f"{group.provider} {group.label}: no object {file.key}",
            )
        chunks, attributes = found
        # The sha256 metadata every write stores, else the object's ETag
        # (the one recorded when it was verified, or the server's now).
        sha256 = file.sha256 or attributes.get("sha256")
        try:
            local.write_verified(
                file.key,
                chunks if file.size else iter(()),
                size=file.size,
                sha256=sha256,
                etag=file.etag or attributes.get("etag"),
            )
        except CorruptObject as exc:
            raise _FileFailed(
                corrupt_file_reason(group.provider),
                f"{group.provider} {group.label}: {exc}",
            ) from exc
        outcome.written[file.key] = ""
        count.files += 1
        count.bytes += file.size


def track_copy(
    *, track: Track, target: str, attachments: list[Attachment] | None = None
) -> Outcome:
    """Copy one row's bytes, then its attached groups' files, to `target`
    and verify them. Touches no rows (`attachments` are read beforehand);
    one bad file fails the track, so a track never flips without its groups."""
    outcome = Outcome(track.pk, "moved")
    key = track_key(track)
    resumed = getattr(track, "resumed", True)
    try:
        if target == StorageBackend.S3:
            _original_to_s3(track, key, outcome)
        else:
            _original_to_local(track, key, outcome)
        for group in attachments or ():
            count = outcome.attached.setdefault(group.provider, AttachedCount())
            if target == StorageBackend.S3:
                _attached_to_s3(group, count, outcome, resumed=resumed)
            else:
                _attached_to_local(group, count, outcome)
            outcome.attachments.append(group)
    except _FileFailed as exc:
        return _failed(outcome, exc.reason, exc.detail)
    except (StorageUnavailable, OSError) as exc:
        return _failed(outcome, STORAGE_ERROR, str(exc) or type(exc).__name__)
    return outcome


def _failed(outcome: Outcome, reason: str, detail: str) -> Outcome:
    return Outcome(
        outcome.track_id,
        "failed",
        reason=reason,
        detail=detail[:400],
        written=outcome.written,
    )
