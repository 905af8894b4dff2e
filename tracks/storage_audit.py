"""Audit the database against the disk and the bucket, and purge old copies."""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.utils import timezone

from tracks.attachments import Attachment, AttachmentProvider, attachment_providers
from tracks.errors import StorageUnavailable
from tracks.migration import track_key
from tracks.models import StorageBackend, Track
from tracks.storage import LocalStorage, TrackStorage, hash_file, storage_for

PREFIX = "tracks/"


@dataclass
class AuditReport:
    checked: int = 0
    missing: list[dict[str, Any]] = field(default_factory=list)
    mismatched: list[dict[str, Any]] = field(default_factory=list)
    orphans: list[dict[str, Any]] = field(default_factory=list)
    deleted_orphans: int = 0
    # Attached files checked (by size), by provider name.
    attached_checked: dict[str, int] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return not (self.missing or self.mismatched or self.orphans)

    def as_dict(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "missing": self.missing,
            "mismatched": self.mismatched,
            "orphans": self.orphans,
            "deleted_orphans": self.deleted_orphans,
            **{f"{name}_files_checked": n for name, n in self.attached_checked.items()},
            "clean": self.clean,
        }


def _sha256_of(storage: TrackStorage, key: str, size: int) -> str:
    local = storage.local_path(key)
    if local is not None:
        return hash_file(local)[1]
    digest = hashlib.sha256()
    for chunk in storage.read(key, 0, max(size - 1, 0)):
        digest.update(chunk)
    return digest.hexdigest()


def storage_audit(*, backends: list[str]) -> AuditReport:
    """Read every row's bytes where the row says they are; list orphans.

    Hashes the content itself (not object metadata), so bytes changed after
    upload are found. Files attached to tracks (HLS packages) are checked by
    size against one listing of their providers' prefixes.
    """
    report = AuditReport()
    # Any row, on either backend, may own a key: a copy left behind on the
    # old backend is not an orphan until purged. Read once for all backends.
    all_keys = {
        track_key(t)
        for t in Track.objects.only("id", "storage_key", "sha256", "mime_type")
    }
    for backend in backends:
        storage = storage_for(backend)
        known: set[str] = set()
        rows = Track.objects.filter(storage_backend=backend).only(
            "id", "storage_key", "size_bytes", "sha256", "mime_type"
        )
        for track in rows.iterator(chunk_size=500):
            key = track_key(track)
            known.add(key)
            report.checked += 1
            info = storage.stat(key)
            if info is None:
                report.missing.append(
                    {"track": str(track.pk), "backend": backend, "key": key}
                )
                continue
            sha256 = _sha256_of(storage, key, info.size)
            if info.size != track.size_bytes or sha256 != track.sha256:
                report.mismatched.append(
                    {
                        "track": str(track.pk),
                        "backend": backend,
                        "key": key,
                        "expected_size": track.size_bytes,
                        "size": info.size,
                        "expected_sha256": track.sha256,
                        "sha256": sha256,
                    }
                )
        for key, size in storage.keys(PREFIX):
            if key not in all_keys:
                report.orphans.append({"backend": backend, "key": key, "size": size})
        for provider in attachment_providers():
            _audit_attached(report, provider, backend, storage)
    return report


def _audit_attached(
    report: AuditReport,
    provider: AttachmentProvider,
    backend: str,
    storage: TrackStorage,
) -> None:
    """Check a provider's files on `backend` against one listing of its prefixes.

    Sizes only (the listing has them; hashing every segment would cost far
    more than the originals), plus orphans: listed names no group owns. The
    groups are read before the listing and the owner test after it, so a
    group published meanwhile is neither missing nor orphaned.
    """
    groups = list(provider.attached(backend=backend))
    listing: dict[str, int] = {}
    for prefix in provider.prefixes:
        listing.update(storage.keys(prefix))
    known = provider.known_keys()
    checked = 0
    for group in groups:
        for file in group.files:
            checked += 1
            size = listing.get(file.key)
            entry = {
                "track": str(group.track_id),
                provider.name: group.label,
                "backend": backend,
                "key": file.key,
            }
            if size is None:
                report.missing.append(entry)
            elif size != file.size:
                report.mismatched.append(
                    {**entry, "expected_size": file.size, "size": size}
                )
    report.attached_checked[provider.name] = (
        report.attached_checked.get(provider.name, 0) + checked
    )
    for key in sorted(listing):
        if not known(key):
            report.orphans.append(
                {"backend": backend, "key": key, "size": listing[key]}
            )


def storage_delete_orphans(*, report: AuditReport) -> int:
    deleted = 0
    for orphan in report.orphans:
        storage_for(orphan["backend"]).delete(orphan["key"])
        deleted += 1
    report.deleted_orphans = deleted
    return deleted


def storage_purge_local(
    *, older_than_days: float, dry_run: bool = False
) -> dict[str, int]:
    """Delete local copies of rows verified on S3 at least that long ago.

    Each object is checked (size and SHA-256 metadata) right before its
    local copy goes, so a purge never removes the last good copy.
    """
    cutoff = timezone.now() - timedelta(days=older_than_days)
    local = storage_for(StorageBackend.LOCAL)
    s3 = storage_for(StorageBackend.S3)
    result = {"purged": 0, "bytes": 0, "kept": 0}
    attached = {
        p.name: {"purged": 0, "files": 0, "bytes": 0, "kept": 0}
        for p in attachment_providers()
    }
    rows = Track.objects.filter(
        storage_backend=StorageBackend.S3, storage_verified_at__lte=cutoff
    ).only("id", "storage_key", "size_bytes", "sha256", "mime_type")
    chunk: list[object] = []
    for track in rows.iterator(chunk_size=500):
        chunk.append(track.pk)
        if len(chunk) >= 500:
            _purge_attached(chunk, attached, dry_run=dry_run)
            chunk = []
        key = track_key(track)
        path = local.local_path(key)
        if path is None or not path.exists():
            continue
        try:
            info = s3.stat(key)
        except StorageUnavailable:
            info = None
        if info is None or info.size != track.size_bytes or info.sha256 != track.sha256:
            result["kept"] += 1
            continue
        result["purged"] += 1
        result["bytes"] += track.size_bytes
        if not dry_run:
            local.delete(key)
    _purge_attached(chunk, attached, dry_run=dry_run)
    # Reported only when there was something, so the shape stays the same
    # for installs without attached files.
    for name, counts in attached.items():
        if any(counts.values()):
            result.update({f"{name}_{k}": v for k, v in counts.items()})
    return result


def _purge_attached(
    track_ids: list[object],
    totals: dict[str, dict[str, int]],
    *,
    dry_run: bool,
) -> None:
    """Delete local copies of these tracks' groups recorded on S3, each group
    only when every one of its objects checks out there."""
    if not track_ids:
        return
    for provider in attachment_providers():
        counts = totals[provider.name]
        for group in provider.attached(backend=StorageBackend.S3, track_ids=track_ids):
            present = _local_copies(group)
            if not present:
                continue
            if not _verified_on_s3(group, present):
                counts["kept"] += 1
                continue
            counts["purged"] += 1
            counts["files"] += len(present)
            counts["bytes"] += sum(f.size for f in group.files if f.key in present)
            if not dry_run:
                _delete_local(present)


def _local_copies(group: Attachment) -> dict[str, Path]:
    local = storage_for(StorageBackend.LOCAL)
    paths = {f.key: local.local_path(f.key) for f in group.files}
    return {k: p for k, p in paths.items() if p is not None and p.is_file()}


def _verified_on_s3(group: Attachment, present: dict[str, Path]) -> bool:
    """Every object of the group has its size, and the sha256 metadata of
    each one whose local copy would go matches that copy."""
    s3 = storage_for(StorageBackend.S3)
    for file in group.files:
        try:
            info = s3.stat(file.key)
        except StorageUnavailable:
            return False
        if info is None or info.size != file.size:
            return False
        path = present.get(file.key)
        if path is not None and (
            info.sha256 is None or hash_file(path)[1] != info.sha256
        ):
            return False
    return True


def _delete_local(present: dict[str, Path]) -> None:
    local = storage_for(StorageBackend.LOCAL)
    for key in present:
        local.delete(key)
    if not isinstance(local, LocalStorage):
        return
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
