"""Purge: delete local copies of what S3 verifiably holds, row by row under a lock.

A local copy goes only when the S3 object is proved to hold the same bytes:
its ETag (from a sorted listing, or a package directory's listing) must be
the MD5 of the local file (or of its parts), whose SHA-256 must be the
row's; or, with `deep`, the object read back must hash to the row's
SHA-256. Metadata alone (`x-amz-meta-sha256`) proves nothing: anyone who
can write the object can write it. Right before deleting, each row is locked
and checked again (still on S3, verified long enough ago, held by no
storage migration), so a move back to local disk that starts meanwhile
never loses the file it is about to point at.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from mediastore.backends import LocalMediaStorage, local_storage, s3_storage
from mediastore.digests import Hasher, digests_of_file, etag_verifies_file
from mediastore.errors import StorageUnavailable
from mediastore.files import ListedObject
from tracks.attachments import Attachment, attachment_providers
from tracks.audit import TRACKS_PREFIX
from tracks.migration.claims import BUSY_STATES
from tracks.migration.plan import object_name
from tracks.models import StorageBackend, Track

BATCH = 500


@dataclass
class _Candidate:
    pk: Any
    key: str
    size: int
    sha256: str
    etag: str


@dataclass
class PurgeResult:
    purged: int = 0
    bytes: int = 0
    kept: int = 0
    attached: dict[str, dict[str, int]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, int]:
        result = {"purged": self.purged, "bytes": self.bytes, "kept": self.kept}
        # Reported only when there was something, so the shape stays the
        # same for installs without attached files.
        for name, counts in self.attached.items():
            if any(counts.values()):
                result.update({f"{name}_{k}": v for k, v in counts.items()})
        return result


def storage_purge_local(
    *, older_than_days: float, dry_run: bool = False, deep: bool = False
) -> dict[str, int]:
    """Delete local copies of rows verified on S3 at least that long ago."""
    if older_than_days < 0:
        raise ValueError("older_than_days must not be negative")
    cutoff = timezone.now() - timedelta(days=older_than_days)
    result = PurgeResult(
        attached={
            p.name: {"purged": 0, "files": 0, "bytes": 0, "kept": 0}
            for p in attachment_providers()
        }
    )
    listing = s3_storage().keys(TRACKS_PREFIX)
    batch: list[_Candidate] = []
    for candidate, listed in _with_listing(_candidates(cutoff), listing):
        if _verified(candidate, listed, deep=deep):
            batch.append(candidate)
        elif local_storage().local_path(candidate.key).exists():
            result.kept += 1
        if len(batch) >= BATCH:
            _purge_batch(batch, cutoff, result, dry_run=dry_run, deep=deep)
            batch = []
    _purge_batch(batch, cutoff, result, dry_run=dry_run, deep=deep)
    return result.as_dict()


def _candidates(cutoff: Any) -> Iterator[_Candidate]:
    rows = (
        Track.objects.filter(
            storage_backend=StorageBackend.S3, storage_verified_at__lte=cutoff
        )
        .order_by("pk")
        .values_list(
            "pk", "storage_key", "size_bytes", "sha256", "mime_type", "storage_etag"
        )
        .iterator(chunk_size=2000)
    )
    for pk, key, size, sha256, mime_type, etag in rows:
        name = object_name(
            track_id=pk, storage_key=key, sha256=sha256, mime_type=mime_type
        )
        yield _Candidate(pk, name, size, sha256, etag)


def _with_listing(
    candidates: Iterator[_Candidate], listing: Iterator[ListedObject]
) -> Iterator[tuple[_Candidate, ListedObject | None]]:
    """Each candidate with its listed object (None when it has none)."""
    listed = next(listing, None)
    for candidate in candidates:
        while listed is not None and listed.key < candidate.key:
            listed = next(listing, None)
        match = listed if listed is not None and listed.key == candidate.key else None
        yield candidate, match


def _verified(
    candidate: _Candidate, listed: ListedObject | None, *, deep: bool
) -> bool:
    """Whether S3 provably holds this row's bytes (see the module's note)."""
    path = local_storage().local_path(candidate.key)
    if listed is None or listed.size != candidate.size or not path.is_file():
        return False
    if candidate.etag and listed.etag != candidate.etag:
        return deep and _deep_verified(candidate)  # changed since it was verified
    digests = digests_of_file(path)
    if digests.sha256 == candidate.sha256 and etag_verifies_file(listed.etag, path):
        return True
    return deep and _deep_verified(candidate)


def _deep_verified(candidate: _Candidate) -> bool:
    found = s3_storage().transfer.get(candidate.key)
    if found is None:
        return False
    hasher = Hasher()
    for chunk in found[0]:
        hasher.update(chunk)
    digests = hasher.digests()
    return digests.size == candidate.size and digests.sha256 == candidate.sha256


def _purge_batch(
    batch: list[_Candidate],
    cutoff: Any,
    result: PurgeResult,
    *,
    dry_run: bool,
    deep: bool,
) -> None:
    """Delete the batch's local copies, each row locked and checked again."""
    if not batch:
        return
    wanted = {c.pk: c for c in batch}
    groups = _verified_groups(list(wanted), result, deep=deep)
    local = local_storage()
    with transaction.atomic():
        # Locked until commit: a storage migration cannot claim these rows
        # (SKIP LOCKED passes them over) while their local copies go.
        locked = (
            Track.objects.select_for_update(skip_locked=True)
            .filter(
                pk__in=list(wanted),
                storage_backend=StorageBackend.S3,
                storage_verified_at__lte=cutoff,
            )
            .exclude(
                Q(migration_state__in=BUSY_STATES)
                & Q(migration_lease_until__gte=timezone.now())
            )
            .values_list("pk", "storage_key")
        )
        for pk, key in locked:
            candidate = wanted[pk]
            if key and key != candidate.key:
                continue  # renamed since it was checked
            path = local.local_path(candidate.key)
            if path.exists():
                result.purged += 1
                result.bytes += candidate.size
                if not dry_run:
                    local.remove(candidate.key)
            for group, present in groups.get(pk, ()):
                counts = result.attached[group.provider]
                counts["purged"] += 1
                counts["files"] += len(present)
                counts["bytes"] += sum(f.size for f in group.files if f.key in present)
                if not dry_run:
                    _delete_local(local, present)


def _verified_groups(
    track_ids: list[Any], result: PurgeResult, *, deep: bool
) -> dict[Any, list[tuple[Attachment, dict[str, Path]]]]:
    """These tracks' groups on S3 whose local files S3 provably holds."""
    found: dict[Any, list[tuple[Attachment, dict[str, Path]]]] = {}
    for provider in attachment_providers():
        for group in provider.attached(backend=StorageBackend.S3, track_ids=track_ids):
            present = _local_copies(group)
            if not present:
                continue
            if not _group_verified(group, present, deep=deep):
                result.attached[provider.name]["kept"] += 1
                continue
            found.setdefault(group.track_id, []).append((group, present))
    return found


def _local_copies(group: Attachment) -> dict[str, Path]:
    local = local_storage()
    paths = {f.key: local.local_path(f.key) for f in group.files}
    return {k: p for k, p in paths.items() if p.is_file()}


def _group_verified(group: Attachment, present: dict[str, Path], *, deep: bool) -> bool:
    """Every object of the group is on S3 with its size, and each one whose
    local copy would go holds that copy's bytes (its ETag, or with `deep`
    its bytes read back)."""
    if not group.files:
        return False
    # A group lives under one directory ("hls/<hash>/"): one listing.
    prefix = "/".join(group.files[0].key.split("/")[:2]) + "/"
    try:
        listing = {o.key: o for o in s3_storage().keys(prefix)}
    except StorageUnavailable:
        return False
    for file in group.files:
        listed = listing.get(file.key)
        if listed is None or listed.size != file.size:
            return False
        path = present.get(file.key)
        if path is None:
            continue
        proved = (not file.etag or listed.etag == file.etag) and etag_verifies_file(
            listed.etag, path
        )
        if not proved and not (deep and _same_bytes(file.key, path)):
            return False
    return True


def _same_bytes(key: str, path: Path) -> bool:
    """Whether the object read back hashes as the local file does."""
    found = s3_storage().transfer.get(key)
    if found is None:
        return False
    hasher = Hasher()
    for chunk in found[0]:
        hasher.update(chunk)
    return hasher.digests().sha256 == digests_of_file(path).sha256


def _delete_local(local: LocalMediaStorage, present: dict[str, Path]) -> None:
    for key in present:
        local.remove(key)
    # The group's directories when left empty, deepest first, never the
    # top-level prefix ("hls/") that other groups are written into.
    dirs: set[Path] = set()
    for path in present.values():
        parent = path.parent
        while len(parent.relative_to(local.root).parts) > 1:
            dirs.add(parent)
            parent = parent.parent
    for directory in sorted(dirs, key=lambda d: len(d.parts), reverse=True):
        with contextlib.suppress(OSError):
            directory.rmdir()
