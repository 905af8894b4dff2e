"""Audit: the database beside the disk and the bucket, one sorted listing each.

The default check reads no object. On S3, the rows on S3 are walked in
object-name order and merged with a listing of the bucket in the same order,
so memory stays flat and a million objects cost one listing. On local disk, each
row's file is looked at (a stat), then one walk finds the files no row
owns, a thousand names at a time. Each row's object must exist on
the row's backend with the row's size and, on S3, the ETag recorded when
the object was verified (the server's MD5 of its bytes: a changed object
has another ETag). Objects no row owns, on either backend, are orphans.
`deep` also reads every object the rows point to and hashes it (SHA-256
against the row; attached files against their recorded ETag).
"""

from __future__ import annotations

import contextlib
import itertools
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from mediastore.backends import MediaStorage, storage_for
from mediastore.digests import Hasher, etag_verifies
from mediastore.files import ListedObject
from tracks.attachments import attachment_providers
from tracks.migration.plan import object_name
from tracks.models import Track

TRACKS_PREFIX = "tracks/"
# Problems listed in full in a report; beyond this they are only counted.
REPORT_LIMIT = 1000


@dataclass(frozen=True)
class _Expected:
    """One object some row says exists (on `backend`), in name order."""

    key: str
    backend: str
    size: int
    etag: str
    sha256: str | None
    entry: dict[str, Any]


@dataclass
class AuditReport:
    checked: int = 0  # rows of tracks checked on their backend
    listed: int = 0  # objects listed, every backend and prefix
    missing: list[dict[str, Any]] = field(default_factory=list)
    mismatched: list[dict[str, Any]] = field(default_factory=list)
    orphans: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(
        default_factory=lambda: {"missing": 0, "mismatched": 0, "orphans": 0}
    )
    # ETags not recorded (rows moved before they were): checked by size only.
    unrecorded_etags: int = 0
    deleted_orphans: int = 0
    deep: bool = False
    seconds: float = 0.0
    # Attached files checked, by provider name.
    attached_checked: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, entry: dict[str, Any]) -> None:
        self.counts[kind] += 1
        listed: list[dict[str, Any]] = getattr(self, kind)
        if len(listed) < REPORT_LIMIT:
            listed.append(entry)

    @property
    def clean(self) -> bool:
        return not any(self.counts.values())

    @property
    def objects_per_second(self) -> float:
        return self.listed / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "listed": self.listed,
            "deep": self.deep,
            "missing_count": self.counts["missing"],
            "mismatched_count": self.counts["mismatched"],
            "orphans_count": self.counts["orphans"],
            "missing": self.missing,
            "mismatched": self.mismatched,
            "orphans": self.orphans,
            "unrecorded_etags": self.unrecorded_etags,
            "deleted_orphans": self.deleted_orphans,
            **{f"{name}_files_checked": n for name, n in self.attached_checked.items()},
            "seconds": round(self.seconds, 3),
            "objects_per_second": round(self.objects_per_second),
            "clean": self.clean,
        }


AuditProgress = Callable[[AuditReport], None]


def _expected_tracks(backend: str) -> Iterator[_Expected]:
    """The objects of the tracks on `backend`, in name order: the ids are in
    the names (`tracks/<id>/…`), ids sort as their text does, and the
    partial index of the backend's rows is in id order."""
    rows = (
        Track.objects.filter(storage_backend=backend)
        .order_by("pk")
        .values_list(
            "pk",
            "storage_backend",
            "storage_key",
            "size_bytes",
            "sha256",
            "mime_type",
            "storage_etag",
        )
        .iterator(chunk_size=2000)
    )
    for pk, backend, key, size, sha256, mime_type, etag in rows:
        yield _Expected(
            key=object_name(
                track_id=pk, storage_key=key, sha256=sha256, mime_type=mime_type
            ),
            backend=backend,
            size=size,
            etag=etag,
            sha256=sha256,
            entry={"track": str(pk)},
        )


def _expected_attached(provider: Any, backend: str) -> Iterator[_Expected]:
    for group in provider.in_key_order(backend=backend):
        for file in sorted(group.files, key=lambda f: f.key):
            yield _Expected(
                key=file.key,
                backend=group.backend,
                size=file.size,
                etag=file.etag,
                sha256=file.sha256,
                entry={"track": str(group.track_id), provider.name: group.label},
            )


def _hash_object(storage: MediaStorage, key: str, size: int) -> Hasher:
    hasher = Hasher()
    local = storage.local_path(key)
    if local is not None:
        with local.open("rb") as f:
            while chunk := f.read(1024 * 1024):
                hasher.update(chunk)
        return hasher
    for chunk in storage.read(key, 0, max(size - 1, 0)) if size else ():
        hasher.update(chunk)
    return hasher


def _merge(
    report: AuditReport,
    storage: MediaStorage,
    listing: Iterator[ListedObject],
    expected: Iterator[_Expected],
    owned: Callable[[list[str]], set[str]],
    *,
    deep: bool,
    progress: AuditProgress | None,
) -> int:
    """Walk a sorted listing beside the sorted names of the rows on this
    backend; returns how many of those rows were checked. Listed names no
    row here matches are asked, a thousand at a time, whether a row on the
    other backend owns them (its leftover copy, not yet purged)."""
    backend = storage.backend
    checked = 0
    listed = next(listing, None)
    row = next(expected, None)
    last_key = ""
    # Names a row checked on its own (out of order): not orphans.
    alone: set[str] = set()
    unmatched: list[ListedObject] = []

    def flush() -> None:
        mine = owned([o.key for o in unmatched])
        for stray in unmatched:
            if stray.key not in mine and stray.key not in alone:
                report.add(
                    "orphans",
                    {"backend": backend, "key": stray.key, "size": stray.size},
                )
        unmatched.clear()

    while listed is not None or row is not None:
        if row is not None and row.key < last_key:
            # A name out of order (a hand-made storage_key): check it alone.
            alone.add(row.key)
            checked += 1
            _check_alone(report, storage, row, deep=deep)
            row = next(expected, None)
            continue
        if listed is not None and (row is None or listed.key < row.key):
            report.listed += 1
            unmatched.append(listed)
            if len(unmatched) >= 1000:
                flush()
            listed = next(listing, None)
            continue
        if row is None:
            break
        last_key = row.key
        checked += 1
        if listed is None or row.key < listed.key:
            report.add("missing", {**row.entry, "backend": backend, "key": row.key})
            row = next(expected, None)
            continue
        report.listed += 1
        _check(report, storage, row, listed, deep=deep)
        listed = next(listing, None)
        row = next(expected, None)
        if progress and report.listed % 10_000 == 0:
            progress(report)
    flush()
    return checked


def _check(
    report: AuditReport,
    storage: MediaStorage,
    row: _Expected,
    listed: ListedObject,
    *,
    deep: bool,
) -> None:
    entry = {**row.entry, "backend": storage.backend, "key": row.key}
    if listed.size != row.size:
        report.add(
            "mismatched", {**entry, "expected_size": row.size, "size": listed.size}
        )
        return
    if storage.backend == "s3":
        if not row.etag:
            report.unrecorded_etags += 1
        elif listed.etag != row.etag:
            report.add(
                "mismatched", {**entry, "expected_etag": row.etag, "etag": listed.etag}
            )
            return
    if deep:
        _deep_check(report, storage, row, entry)


def _check_alone(
    report: AuditReport, storage: MediaStorage, row: _Expected, *, deep: bool
) -> None:
    info = storage.stat(row.key)
    if info is None:
        report.add("missing", {**row.entry, "backend": storage.backend, "key": row.key})
        return
    _check(
        report,
        storage,
        row,
        ListedObject(key=row.key, size=info.size, etag=info.etag),
        deep=deep,
    )


def _deep_check(
    report: AuditReport, storage: MediaStorage, row: _Expected, entry: dict[str, Any]
) -> None:
    digests = _hash_object(storage, row.key, row.size).digests()
    if row.sha256 is not None:
        ok = digests.sha256 == row.sha256
        got = {"sha256": digests.sha256, "expected_sha256": row.sha256}
    elif row.etag:
        ok = etag_verifies(row.etag, digests) or _multipart_unknown(row.etag)
        got = {"md5": digests.md5_hex, "expected_etag": row.etag}
    else:
        return  # nothing recorded to hash against (a local attached file)
    if not ok:
        report.add("mismatched", {**entry, **got})


def _multipart_unknown(etag: str) -> bool:
    # A multipart ETag needs the part size to recompute; the listing check
    # (same ETag as recorded) already vouched for it.
    return "-" in etag


def storage_audit(
    *, backends: list[str], deep: bool = False, progress: AuditProgress | None = None
) -> AuditReport:
    """Check every row against its backend, and list what no row owns."""
    report = AuditReport(deep=deep)
    started = time.monotonic()
    for backend in backends:
        storage = storage_for(backend)
        if backend == "local":
            _audit_local(report, storage, deep=deep, progress=progress)
            continue
        report.checked += _merge(
            report,
            storage,
            storage.keys(TRACKS_PREFIX),
            _expected_tracks(backend),
            _track_keys_owned,
            deep=deep,
            progress=progress,
        )
        for provider in attachment_providers():
            for prefix in provider.prefixes:
                checked = _merge(
                    report,
                    storage,
                    storage.keys(prefix),
                    (
                        e
                        for e in _expected_attached(provider, backend)
                        if e.key.startswith(prefix)
                    ),
                    provider.owned,
                    deep=deep,
                    progress=progress,
                )
                report.attached_checked[provider.name] = (
                    report.attached_checked.get(provider.name, 0) + checked
                )
    report.seconds = time.monotonic() - started
    if progress:
        progress(report)
    return report


def _audit_local(
    report: AuditReport,
    storage: MediaStorage,
    *,
    deep: bool,
    progress: AuditProgress | None,
) -> None:
    """Local disk: a stat per row on it, then one walk for orphans, checked
    against the rows a thousand names at a time. Sorting a directory of a
    million track directories (a listing's order) would hold every name."""
    for row in _expected_tracks("local"):
        report.checked += 1
        _check_alone(report, storage, row, deep=deep)
        if progress and report.checked % 10_000 == 0:
            progress(report)
    _orphans_local(report, storage, TRACKS_PREFIX, _track_keys_owned, progress)
    for provider in attachment_providers():
        checked = 0
        for row in _expected_attached(provider, "local"):
            checked += 1
            _check_alone(report, storage, row, deep=deep)
        report.attached_checked[provider.name] = (
            report.attached_checked.get(provider.name, 0) + checked
        )
        for prefix in provider.prefixes:
            _orphans_local(report, storage, prefix, provider.owned, progress)


def _orphans_local(
    report: AuditReport,
    storage: MediaStorage,
    prefix: str,
    owned: Callable[[list[str]], set[str]],
    progress: AuditProgress | None,
) -> None:
    walk = storage.walk(prefix)
    while chunk := list(itertools.islice(walk, 1000)):
        report.listed += len(chunk)
        mine = owned([o.key for o in chunk])
        for listed in chunk:
            if listed.key not in mine:
                report.add(
                    "orphans",
                    {
                        "backend": storage.backend,
                        "key": listed.key,
                        "size": listed.size,
                    },
                )
        if progress:
            progress(report)


def _track_keys_owned(keys: list[str]) -> set[str]:
    """Which of these names (`tracks/<id>/…`) a row owns, on either backend."""
    ids = set()
    for key in keys:
        with contextlib.suppress(ValueError, IndexError):
            ids.add(uuid.UUID(key.split("/")[1]))
    rows = Track.objects.filter(pk__in=ids).values_list(
        "pk", "storage_key", "sha256", "mime_type"
    )
    return {
        object_name(track_id=pk, storage_key=key, sha256=sha256, mime_type=mime_type)
        for pk, key, sha256, mime_type in rows
    }


def storage_delete_orphans(*, report: AuditReport) -> int:
    """Delete the orphans a report lists (at most REPORT_LIMIT per run)."""
    by_backend: dict[str, list[str]] = {}
    for orphan in report.orphans:
        by_backend.setdefault(orphan["backend"], []).append(orphan["key"])
    for backend, keys in by_backend.items():
        storage_for(backend).remove_many(keys)
    report.deleted_orphans = sum(len(k) for k in by_backend.values())
    return report.deleted_orphans
