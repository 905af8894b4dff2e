"""Online storage migration: claim rows, copy and verify bytes, then flip."""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import queue
import socket
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone

from tracks.attachments import (
    Attachment,
    attachment_providers,
    attachments_flip,
    attachments_of,
)
from tracks.errors import StorageUnavailable
from tracks.media_types import CONTENT_TYPES
from tracks.models import (
    MigrationRunStatus,
    MigrationState,
    StorageBackend,
    StorageMigrationRun,
    Track,
)
from tracks.selectors import playback_cache_key
from tracks.storage import (
    CorruptObject,
    LocalStorage,
    SourceFile,
    hash_file,
    storage_for,
)
from veza import metrics

logger = logging.getLogger(__name__)

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


def other_backend(target: str) -> str:
    return StorageBackend.LOCAL if target == StorageBackend.S3 else StorageBackend.S3


def runner_name() -> str:
    """Who holds a claim: host, process and a per-run nonce."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"[:128]


def track_key(track: Track) -> str:
    """The row's object name; rows older than storage_key get the standard one."""
    if track.storage_key:
        return track.storage_key
    extension = next(
        (e for e, m in CONTENT_TYPES.items() if m == track.mime_type), "bin"
    )
    return f"tracks/{track.pk}/{track.sha256}.{extension}"


def migration_selection(
    *, target: str, track_ids: Iterable[str] | None = None
) -> QuerySet[Track]:
    """Rows that a move to `target` would take: those on the other backend."""
    rows = Track.objects.filter(storage_backend=other_backend(target))
    if track_ids:
        rows = rows.filter(pk__in=list(track_ids))
    return rows


def migration_plan(
    *, target: str, track_ids: Iterable[str] | None = None
) -> dict[str, int]:
    """What a run would move: rows and bytes, nothing changed (--dry-run)."""
    plan = migration_totals(target=target, track_ids=track_ids)
    return {"rows": plan["rows"], "bytes": plan["bytes"]}


def migration_totals(
    *, target: str, track_ids: Iterable[str] | None = None
) -> dict[str, int]:
    """Rows and bytes to move, and rows already on `target`, in one query.

    One pass over the table answers both, so a run with nothing to do (a
    re-run) costs this query and no more.
    """
    rows = Track.objects.all()
    if track_ids:
        rows = rows.filter(pk__in=list(track_ids))
    source = Q(storage_backend=other_backend(target))
    totals = rows.aggregate(
        rows=Count("pk", filter=source),
        bytes=Sum("size_bytes", filter=source),
        on_target=Count("pk", filter=Q(storage_backend=target)),
    )
    return {k: v or 0 for k, v in totals.items()}


def attachments_plan(
    *, target: str, track_ids: Iterable[str] | None = None
) -> dict[str, int]:
    """Attached files (`<provider>_files`, `<provider>_bytes`) that would
    move with the selected rows; providers with none are left out."""
    rows = migration_selection(target=target, track_ids=track_ids).values("pk")
    plan: dict[str, int] = {}
    for provider in attachment_providers():
        files, size = provider.totals(backend=other_backend(target), track_ids=rows)
        if files:
            plan[f"{provider.name}_files"] = files
            plan[f"{provider.name}_bytes"] = size
    return plan


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
    # The track's attached groups, every file verified on the target.
    attachments: list[Attachment] = field(default_factory=list)
    attached: dict[str, AttachedCount] = field(default_factory=dict)


@dataclass
class MoveOptions:
    target: str
    workers: int = 4
    batch_size: int = 32
    limit: int | None = None
    track_ids: list[str] = field(default_factory=list)
    lease_seconds: int = 300
    started_by: str = ""


# What the copies and the flip read of a claimed row, and all they may read:
# a deferred column would be fetched by a worker thread, a query per file.
COPY_FIELDS = (
    "id",
    "storage_backend",
    "storage_key",
    "size_bytes",
    "sha256",
    "mime_type",
    "migration_state",
    "migration_target",
    "migration_runner",
    "migration_lease_until",
    "migration_error",
)


def tracks_claim(
    *,
    runner: str,
    target: str,
    count: int,
    lease_seconds: int,
    track_ids: list[str] | None = None,
) -> list[Track]:
    """Claim up to `count` free rows for `runner`, in a short transaction.

    A row is free when no live lease holds it. Rows this runner already
    failed are left alone until the next run. Each returned row carries
    `resumed`: whether an earlier attempt may have left a copy behind.
    """
    now = timezone.now()
    lease_until = now + timedelta(seconds=lease_seconds)
    free = Q(migration_lease_until__isnull=True) | Q(migration_lease_until__lt=now)
    rows = (
        migration_selection(target=target, track_ids=track_ids)
        .filter(free)
        .exclude(migration_state=MigrationState.FAILED, migration_runner=runner)
    )
    claim = {
        "migration_state": MigrationState.CLAIMED,
        "migration_target": target,
        "migration_runner": runner,
        "migration_lease_until": lease_until,
        "migration_error": "",
    }
    if connection.features.has_select_for_update_skip_locked:
        # The locked rows are read whole, so the claim needs no second SELECT:
        # the columns the copy reads are not the ones the claim changes.
        with transaction.atomic():
            claimed = list(
                rows.select_for_update(skip_locked=True)
                .only(*COPY_FIELDS)
                .order_by("pk")[:count]
            )
            Track.objects.filter(pk__in=[t.pk for t in claimed]).update(**claim)
        for track in claimed:
            track.resumed = track.migration_state != ""  # type: ignore[attr-defined]
            for name, value in claim.items():
                setattr(track, name, value)
        return claimed
    # No SKIP LOCKED (SQLite): a conditional UPDATE per row decides who wins;
    # it re-checks that the row is still free and on the source.
    prior = {}
    candidates = rows.order_by("pk").values_list("pk", "migration_state")
    for pk, state in candidates[: count * 2]:
        if rows.filter(pk=pk).update(**claim) == 1:
            prior[pk] = state
        if len(prior) >= count:
            break
    claimed = list(
        Track.objects.filter(pk__in=list(prior), migration_runner=runner)
        .only(*COPY_FIELDS)
        .order_by("pk")
    )
    for track in claimed:
        track.resumed = prior[track.pk] != ""  # type: ignore[attr-defined]
    return claimed


def _copy_to_s3(track: Track, key: str) -> Outcome:
    # Only a row that was tried before can have an object already; skipping
    # the HEAD for fresh rows saves a request per file.
    s3 = storage_for(StorageBackend.S3)
    existing = s3.stat(key) if getattr(track, "resumed", True) else None
    if (
        existing
        and existing.size == track.size_bytes
        and existing.sha256 == track.sha256
    ):
        # A re-run after a crash: the object is whole, flip without uploading.
        return Outcome(track.pk, "already_there")
    path = storage_for(StorageBackend.LOCAL).local_path(key)
    if path is None or not path.is_file():
        return Outcome(
            track.pk, "failed", reason=MISSING_SOURCE, detail=f"no file at {key}"
        )
    size, sha256, md5 = hash_file(path)
    if size != track.size_bytes or sha256 != track.sha256:
        return Outcome(
            track.pk,
            "failed",
            reason=CORRUPT_SOURCE,
            detail=f"file has {size} bytes, sha256 {sha256[:12]}…",
        )
    s3.put(
        key,
        SourceFile(
            path=path,
            size=size,
            sha256=sha256,
            md5_base64=md5,
            content_type=track.mime_type,
        ),
    )
    return Outcome(track.pk, "moved", size=size)


def _copy_to_local(track: Track, key: str) -> Outcome:
    local = storage_for(StorageBackend.LOCAL)
    if not isinstance(local, LocalStorage):
        raise TypeError("the local backend must be LocalStorage")
    s3 = storage_for(StorageBackend.S3)
    path = local.local_path(key)
    if path is not None and path.is_file():
        size, sha256, _ = hash_file(path)
        if size == track.size_bytes and sha256 == track.sha256:
            return Outcome(track.pk, "already_there")
    info = s3.stat(key)
    if info is None:
        return Outcome(
            track.pk, "failed", reason=MISSING_SOURCE, detail=f"no object {key}"
        )
    try:
        local.write_verified(
            key,
            s3.read(key, 0, max(track.size_bytes - 1, 0)),
            size=track.size_bytes,
            sha256=track.sha256,
        )
    except CorruptObject as exc:
        return Outcome(track.pk, "failed", reason=CORRUPT_SOURCE, detail=str(exc))
    return Outcome(track.pk, "moved", size=track.size_bytes)


def _held_by_others(*, runner: str, target: str, track_ids: list[str]) -> bool:
    rows = migration_selection(target=target, track_ids=track_ids)
    return (
        rows.exclude(migration_runner=runner)
        .filter(migration_lease_until__isnull=False)
        .exists()
    )


class _AttachedFileFailed(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _attached_to_s3(group: Attachment, count: AttachedCount, *, resumed: bool) -> None:
    local = storage_for(StorageBackend.LOCAL)
    s3 = storage_for(StorageBackend.S3)
    for file in group.files:
        path = local.local_path(file.key)
        if path is None or not path.is_file():
            raise _AttachedFileFailed(
                missing_file_reason(group.provider),
                f"{group.provider} {group.label}: no file at {file.key}",
            )
        size, sha256, md5 = hash_file(path)
        if size != file.size or (file.sha256 and sha256 != file.sha256):
            raise _AttachedFileFailed(
                corrupt_file_reason(group.provider),
                f"{group.provider} {group.label}: {file.key} has {size} bytes, "
                f"sha256 {sha256[:12]}…, expected {file.size} bytes",
            )
        # As for originals, only a row tried before can have copies already.
        if resumed:
            existing = s3.stat(file.key)
            if existing and existing.size == size and existing.sha256 == sha256:
                count.already_there += 1
                continue
        s3.put(
            file.key,
            SourceFile(
                path=path,
                size=size,
                sha256=sha256,
                md5_base64=md5,
                content_type=file.content_type,
                cache_control=file.cache_control,
            ),
        )
        count.files += 1
        count.bytes += size


def _attached_to_local(group: Attachment, count: AttachedCount) -> None:
    local = storage_for(StorageBackend.LOCAL)
    if not isinstance(local, LocalStorage):
        raise TypeError("the local backend must be LocalStorage")
    s3 = storage_for(StorageBackend.S3)
    for file in group.files:
        info = s3.stat(file.key)
        if info is None:
            raise _AttachedFileFailed(
                missing_file_reason(group.provider),
                f"{group.provider} {group.label}: no object {file.key}",
            )
        if info.size != file.size or (
            file.sha256 and info.sha256 and info.sha256 != file.sha256
        ):
            raise _AttachedFileFailed(
                corrupt_file_reason(group.provider),
                f"{group.provider} {group.label}: {file.key} has {info.size} "
                f"bytes, expected {file.size}",
            )
        # The object's sha256 metadata (written by every put) checks the copy.
        expected = file.sha256 or info.sha256
        path = local.local_path(file.key)
        if (
            expected
            and path.is_file()
            and path.stat().st_size == file.size
            and hash_file(path)[1] == expected
        ):
            # Left there by an earlier move the other way (not yet purged).
            count.already_there += 1
            continue
        chunks: Iterable[bytes] = (
            s3.read(file.key, 0, file.size - 1) if file.size else iter(())
        )
        if expected is None:
            # An object stored without the metadata: small files, so hash
            # them in memory; the size still checks the copy.
            data = b"".join(chunks)
            expected = hashlib.sha256(data).hexdigest()
            chunks = [data]
        try:
            local.write_verified(
                file.key, iter(chunks), size=file.size, sha256=expected
            )
        except CorruptObject as exc:
            raise _AttachedFileFailed(
                corrupt_file_reason(group.provider),
                f"{group.provider} {group.label}: {exc}",
            ) from exc
        count.files += 1
        count.bytes += file.size


def _copy_attachments(
    outcome: Outcome, groups: list[Attachment], *, target: str, resumed: bool
) -> Outcome:
    """Copy and verify every file of the track's groups after its original.

    One bad file fails the track, so a track never flips without its groups.
    """
    try:
        for group in groups:
            count = outcome.attached.setdefault(group.provider, AttachedCount())
            if target == StorageBackend.S3:
                _attached_to_s3(group, count, resumed=resumed)
            else:
                _attached_to_local(group, count)
            outcome.attachments.append(group)
    except _AttachedFileFailed as exc:
        return Outcome(
            outcome.track_id, "failed", reason=exc.reason, detail=exc.detail[:400]
        )
    return outcome


def track_copy(
    *, track: Track, target: str, attachments: list[Attachment] | None = None
) -> Outcome:
    """Copy one row's bytes, then its attached groups' files, to `target`
    and verify them. Touches no rows (`attachments` are read beforehand)."""
    key = track_key(track)
    try:
        if target == StorageBackend.S3:
            outcome = _copy_to_s3(track, key)
        else:
            outcome = _copy_to_local(track, key)
        if outcome.kind == "failed" or not attachments:
            return outcome
        return _copy_attachments(
            outcome,
            attachments,
            target=target,
            resumed=getattr(track, "resumed", True),
        )
    except (StorageUnavailable, OSError) as exc:
        return Outcome(track.pk, "failed", reason=STORAGE_ERROR, detail=str(exc)[:400])


def tracks_flip(
    *,
    runner: str,
    target: str,
    tracks: list[Track],
    attachments: dict[Any, list[Attachment]] | None = None,
) -> set[Any]:
    """Point verified rows at `target`; returns the ids flipped.

    Only rows this runner still holds and that are still on the source are
    flipped, in one short transaction, together with their verified
    `attachments` (by track id) through the providers.
    """
    source = other_backend(target)
    now = timezone.now()
    pks = [t.pk for t in tracks]
    # Recorded before the flip: a crash between the two is reconciled by the
    # next run, which finds the verified copy and flips without copying.
    Track.objects.filter(
        pk__in=pks, migration_runner=runner, storage_backend=source
    ).update(migration_state=MigrationState.VERIFIED)
    with transaction.atomic():
        held = Track.objects.filter(
            pk__in=pks, migration_runner=runner, storage_backend=source
        )
        for track in tracks:
            if not track.storage_key:
                # Rows older than storage_key get the name they were copied to.
                held.filter(pk=track.pk).update(storage_key=track_key(track))
        flipped = held.update(
            storage_backend=target,
            storage_verified_at=now,
            migration_state=MigrationState.FLIPPED,
            migration_lease_until=None,
            migration_error="",
        )
        if flipped == len(pks):
            ids = set(pks)
        else:
            # Some leases were lost to another runner: ours are the rows this
            # update stamped (the UPDATE holds their locks until commit).
            ids = set(
                Track.objects.filter(
                    pk__in=pks,
                    migration_runner=runner,
                    storage_backend=target,
                    storage_verified_at=now,
                ).values_list("pk", flat=True)
            )
        if attachments:
            attachments_flip(
                groups=[g for pk in ids for g in attachments.get(pk, ())],
                source=source,
                target=target,
            )
    # A bulk update sends no signals: forget the cached playback columns here.
    cache.delete_many([playback_cache_key(pk) for pk in ids])
    return ids


def track_fail(*, runner: str, outcome: Outcome) -> None:
    Track.objects.filter(pk=outcome.track_id, migration_runner=runner).update(
        migration_state=MigrationState.FAILED,
        migration_error=f"{outcome.reason}: {outcome.detail}"[:500],
        migration_lease_until=None,
    )


def run_attached(run: StorageMigrationRun) -> dict[str, dict[str, int]]:
    """Attached files a run copied, by provider: files, bytes, already_there.

    Kept in the run's `options` JSON (the run has no columns for them).
    """
    attached: dict[str, dict[str, int]] = run.options.setdefault("attached", {})
    return attached


def _count_attached(run: StorageMigrationRun, outcome: Outcome) -> None:
    totals = run_attached(run)
    for provider, count in outcome.attached.items():
        total = totals.setdefault(
            provider, {"files": 0, "bytes": 0, "already_there": 0}
        )
        total["files"] += count.files
        total["bytes"] += count.bytes
        total["already_there"] += count.already_there


Progress = Callable[[StorageMigrationRun], None]


def _clients_build() -> None:
    storage_for(StorageBackend.LOCAL)
    storage_for(StorageBackend.S3)


def _report_done(
    finished: queue.SimpleQueue[tuple[Future[Outcome], Track]],
    track: Track,
    future: Future[Outcome],
) -> None:
    finished.put((future, track))


def _drain(
    finished: queue.SimpleQueue[tuple[Future[Outcome], Track]], *, timeout: float
) -> list[tuple[Future[Outcome], Track]]:
    """Wait up to `timeout` for one finished copy, then take every other one
    already there, so the rows are settled in batches."""
    try:
        done = [finished.get(timeout=timeout)]
    except queue.Empty:
        return []
    while True:
        try:
            done.append(finished.get_nowait())
        except queue.Empty:
            return done


def storage_migrate(
    *,
    options: MoveOptions,
    progress: Progress | None = None,
    heartbeat_seconds: float = 1.0,
) -> StorageMigrationRun:
    """Move every selected row to `options.target`, recording a run.

    Claims are short transactions with a lease; copies run in a thread pool
    and never hold a lock; flips happen only after verification. A crash at
    any point leaves rows that the next run reconciles.
    """
    target = options.target
    plan = migration_totals(target=target, track_ids=options.track_ids)
    selected = min(plan["rows"], options.limit) if options.limit else plan["rows"]
    run = StorageMigrationRun.objects.create(
        target=target,
        started_by=options.started_by,
        hostname=socket.gethostname(),
        pid=os.getpid(),
        options={
            "workers": options.workers,
            "batch_size": options.batch_size,
            "limit": options.limit,
            "track_ids": options.track_ids,
            # Rows on the target before the run started (what a re-run finds).
            "on_target": plan["on_target"],
        },
        selected=selected,
        selected_bytes=plan["bytes"],
    )
    run_attached(run)
    runner = runner_name()
    source = other_backend(target)
    claimed_total = 0
    in_flight = 0
    # Workers hand finished copies back through this queue; the main thread
    # (the only one that touches rows) drains it a batch at a time.
    finished: queue.SimpleQueue[tuple[Future[Outcome], Track]] = queue.SimpleQueue()
    verified: list[tuple[Track, Outcome]] = []
    last_beat = last_flip = time.monotonic()
    exhausted = False
    clients_ready = False
    # Whole batches are claimed and flipped, so the database costs a few
    # queries per batch, not per file; the workers' share on top keeps every
    # worker busy while the next batch is claimed.
    capacity = options.batch_size + options.workers * 2
    claim_at = max(1, options.batch_size // 2)

    def settle(outcomes: list[tuple[Outcome, Track]], *, flush: bool) -> None:
        nonlocal verified, last_flip
        for outcome, track in outcomes:
            if outcome.kind == "failed":
                track_fail(runner=runner, outcome=outcome)
                run.failed += 1
                run.failures[outcome.reason] = run.failures.get(outcome.reason, 0) + 1
                metrics.STORAGE_MIGRATION_ROWS.labels(
                    target, f"failed_{outcome.reason}"
                ).inc()
            else:
                verified.append((track, outcome))
        due = time.monotonic() - last_flip >= 0.5 or len(verified) >= options.batch_size
        if verified and (flush or due):
            last_flip = time.monotonic()
            flipped = tracks_flip(
                runner=runner,
                target=target,
                tracks=[t for t, _ in verified],
                attachments={t.pk: o.attachments for t, o in verified},
            )
            for track, outcome in verified:
                if track.pk not in flipped:
                    run.skipped += 1
                    run.failures[LOST_LEASE] = run.failures.get(LOST_LEASE, 0) + 1
                    metrics.STORAGE_MIGRATION_ROWS.labels(target, LOST_LEASE).inc()
                    continue
                _count_attached(run, outcome)
                if outcome.kind == "moved":
                    run.moved += 1
                    run.bytes_moved += outcome.size
                    metrics.STORAGE_MIGRATION_ROWS.labels(target, "moved").inc()
                    metrics.STORAGE_MIGRATION_BYTES.labels(target).inc(outcome.size)
                else:
                    run.already_there += 1
                    metrics.STORAGE_MIGRATION_ROWS.labels(target, "already_there").inc()
            verified = []

    try:
        with ThreadPoolExecutor(
            max_workers=max(1, options.workers), thread_name_prefix="migrate"
        ) as pool:
            while True:
                room = capacity - in_flight
                if options.limit is not None:
                    room = min(room, options.limit - claimed_total)
                wanted = room >= options.batch_size or (room > 0 and not in_flight)
                if not exhausted and wanted:
                    batch = tracks_claim(
                        runner=runner,
                        target=target,
                        count=min(room, options.batch_size),
                        lease_seconds=options.lease_seconds,
                        track_ids=options.track_ids,
                    )
                    if not batch:
                        exhausted = True
                    elif not clients_ready:
                        # Built once, before the threads would race to build
                        # them, and only when there is something to copy: a
                        # re-run with nothing to do never pays for them.
                        _clients_build()
                        clients_ready = True
                    claimed_total += len(batch)
                    if batch:
                        # Recorded before any I/O: from here on an object may
                        # exist, so whoever takes a row over checks the bucket.
                        Track.objects.filter(
                            pk__in=[t.pk for t in batch], migration_runner=runner
                        ).update(migration_state=MigrationState.COPYING)
                    # Read here: the copies run in threads and touch no rows.
                    attached = attachments_of(
                        track_ids=[t.pk for t in batch], backend=source
                    )
                    for track in batch:
                        future = pool.submit(
                            track_copy,
                            track=track,
                            target=target,
                            attachments=attached.get(track.pk),
                        )
                        future.add_done_callback(
                            functools.partial(_report_done, finished, track)
                        )
                        in_flight += 1
                if options.limit is not None and claimed_total >= options.limit:
                    exhausted = True
                if not in_flight:
                    if not exhausted:
                        continue
                    if options.limit is not None and claimed_total >= options.limit:
                        break
                    if not _held_by_others(
                        runner=runner, target=target, track_ids=options.track_ids
                    ):
                        break
                    # Other runners hold rows: wait for them to flip, or for
                    # their leases to expire (a crashed runner), then retry.
                    time.sleep(min(heartbeat_seconds, 0.5))
                    exhausted = False
                    continue
                done = _drain(finished, timeout=heartbeat_seconds)
                in_flight -= len(done)
                settle(
                    [(f.result(), t) for f, t in done],
                    flush=not in_flight or (exhausted and in_flight < claim_at),
                )
                if time.monotonic() - last_beat >= heartbeat_seconds:
                    run.save()
                    last_beat = time.monotonic()
                    if progress:
                        progress(run)
    except BaseException:
        run.status = MigrationRunStatus.INTERRUPTED
        run.finished_at = timezone.now()
        run.save()
        raise
    run.status = (
        MigrationRunStatus.FAILED
        if run.failed or run.skipped
        else MigrationRunStatus.SUCCEEDED
    )
    run.finished_at = timezone.now()
    run.save()
    if progress:
        progress(run)
    return run


def track_failures(*, limit: int = 100) -> QuerySet[Track]:
    """Rows whose last move failed, newest first, with the reason."""
    failed = Track.objects.filter(migration_state=MigrationState.FAILED)
    return failed.select_related("owner").order_by("title")[:limit]
