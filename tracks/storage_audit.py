"""Audit the database against the disk and the bucket, and purge old copies."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.utils import timezone

from tracks.errors import StorageUnavailable
from tracks.migration import track_key
from tracks.models import StorageBackend, Track
from tracks.storage import TrackStorage, hash_file, storage_for

PREFIX = "tracks/"


@dataclass
class AuditReport:
    checked: int = 0
    missing: list[dict[str, Any]] = field(default_factory=list)
    mismatched: list[dict[str, Any]] = field(default_factory=list)
    orphans: list[dict[str, Any]] = field(default_factory=list)
    deleted_orphans: int = 0

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
    upload are found.
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
    return report


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
    rows = Track.objects.filter(
        storage_backend=StorageBackend.S3, storage_verified_at__lte=cutoff
    ).only("id", "storage_key", "size_bytes", "sha256", "mime_type")
    for track in rows.iterator(chunk_size=500):
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
    return result
