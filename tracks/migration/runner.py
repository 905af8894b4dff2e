"""The runner: claims batches, copies them in threads, settles what finishes."""

from __future__ import annotations

import contextlib
import functools
import logging
import queue
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from django.db import DatabaseError, InterfaceError, OperationalError, connection

from mediastore.backends import s3_require
from tracks.attachments import attachments_of
from tracks.errors import MigrationDatabaseLost
from tracks.migration.claims import DEFAULT_LEASE_SECONDS, Claimer, runner_name
from tracks.migration.copying import Outcome, track_copy
from tracks.migration.plan import migration_totals, other_backend
from tracks.migration.settling import (
    copies_of_deleted_remove,
    track_fail,
    tracks_flip,
)
from tracks.migration.tallying import RunTally
from tracks.models import StorageMigrationRun, Track

logger = logging.getLogger(__name__)
T = TypeVar("T")

Progress = Callable[[StorageMigrationRun], None]
# Verified rows wait at most this long (or for a batch) before they flip.
FLIP_EVERY_SECONDS = 0.5
# How often the run's counters are written, for the admin page and /metrics.
PROGRESS_EVERY_SECONDS = 1.0
# How long a run waits for its database to come back (a restart, a
# failover) before it stops; and between tries meanwhile.
DATABASE_OUTAGE_SECONDS = 60.0
DATABASE_RETRY_SECONDS = 0.5


@dataclass
class MoveOptions:
    target: str
    workers: int = 8
    batch_size: int = 256
    limit: int | None = None
    track_ids: list[str] = field(default_factory=list)
    lease_seconds: int = DEFAULT_LEASE_SECONDS
    started_by: str = ""
    # Seconds to wait for an unreachable database before the run stops.
    database_patience: float = DATABASE_OUTAGE_SECONDS


def storage_migrate(
    *, options: MoveOptions, progress: Progress | None = None
) -> StorageMigrationRun:
    """Move every selected row to `options.target`, recording a run.

    Claims are short transactions under a lease the heartbeat renews; copies
    run in a thread pool and never hold a lock; flips happen only after
    verification. A crash at any point leaves rows that the next run (or a
    runner elsewhere, once the leases run out) reconciles.
    """
    s3_require()  # a move either way reads from S3 or writes to it
    return _Runner(options, progress).run()


Finished = queue.SimpleQueue[tuple[Future[Outcome], Track]]


def _report_done(finished: Finished, track: Track, future: Future[Outcome]) -> None:
    finished.put((future, track))


class _Runner:
    def __init__(self, options: MoveOptions, progress: Progress | None) -> None:
        self.options = options
        self.progress = progress
        self.target = options.target
        totals = migration_totals(
            target=options.target, track_ids=options.track_ids, limit=options.limit
        )
        self.tally = RunTally(
            target=options.target,
            started_by=options.started_by,
            options={
                "workers": options.workers,
                "batch_size": options.batch_size,
                "limit": options.limit,
                "track_ids": options.track_ids,
                "lease_seconds": options.lease_seconds,
                # Rows on the target before the run started (what a re-run finds).
                "on_target": totals["on_target"],
            },
            selected=totals["rows"],
            selected_bytes=totals["bytes"],
        )
        self.claimer = Claimer(
            runner=runner_name(),
            target=options.target,
            lease_seconds=options.lease_seconds,
            track_ids=options.track_ids,
        )
        # Workers hand finished copies back through this queue; this thread
        # (the only one that touches rows) drains it a batch at a time.
        self.finished: Finished = queue.SimpleQueue()
        self.in_flight: dict[Any, Track] = {}
        self.verified: list[tuple[Track, Outcome]] = []
        self.claimed = 0
        self.exhausted = False
        # Whole batches are claimed and flipped, so the database costs a few
        # queries per batch, not per file. A second batch and the workers'
        # share on top keep every worker busy while this thread flips one
        # batch and claims the next (both wait on the database).
        self.capacity = options.batch_size * 2 + options.workers * 2
        self.heartbeat = max(0.2, options.lease_seconds / 3)
        self.tick = min(self.heartbeat, PROGRESS_EVERY_SECONDS)
        self.last_renew = self.last_beat = self.last_flip = time.monotonic()

    def run(self) -> StorageMigrationRun:
        self._through_outages(self.claimer.release_dead_runners)
        try:
            with ThreadPoolExecutor(
                max_workers=max(1, self.options.workers), thread_name_prefix="migrate"
            ) as pool:
                while self._through_outages(lambda: self._step(pool)):
                    pass
        except BaseException:
            # The database may be what failed: its error is the one to see.
            with contextlib.suppress(DatabaseError):
                self.tally.finish(interrupted=True)
            raise
        run = self.tally.finish()
        if self.progress:
            self.progress(run)
        return run

    def _through_outages(self, step: Callable[[], T]) -> T:
        """Run a step; while the database is unreachable (a restart, a
        failover), try it again every half second, for up to
        `database_patience` seconds (a minute by default).

        Only this thread touches rows, and each step leaves them as they
        were or commits whole (claims, flips, lease renewals, counters), so
        trying again is safe. Copies go on meanwhile. Leases that ran out
        during the outage are the next holder's: those rows flip nowhere
        and are counted lost, and the walk's second pass takes them again.
        """
        first_failure: float | None = None
        while True:
            try:
                result = step()
                if first_failure is not None:
                    self._after_outage()
                return result
            except (OperationalError, InterfaceError) as exc:
                now = time.monotonic()
                first_failure = first_failure or now
                if now - first_failure >= self.options.database_patience:
                    raise MigrationDatabaseLost(
                        details={"seconds": int(now - first_failure)}
                    ) from exc
                logger.warning("migration: database unavailable (%s); waiting", exc)
                # A broken connection is not reused: the next try reconnects.
                with contextlib.suppress(DatabaseError):
                    connection.close()
                time.sleep(DATABASE_RETRY_SECONDS)

    def _after_outage(self) -> None:
        """Claims whose answer the outage lost are this runner's but not in
        its hands: free them and walk again, so this run moves them too."""
        held = [*self.in_flight, *(t.pk for t, _ in self.verified)]
        freed = self.claimer.release_own(keep=held)
        self.claimer.restart()
        self.exhausted = False
        logger.warning("migration: database back; %d unanswered claim(s) freed", freed)

    def _step(self, pool: ThreadPoolExecutor) -> bool:
        """One round: claim into free room, settle what finished, beat.
        False when there is nothing left to do."""
        self._fill(pool)
        if not self.in_flight:
            if not self.exhausted:
                return True
            if self._limit_reached() or not self.claimer.held_by_others():
                return False
            # Other runners hold rows: wait for them to flip, or for their
            # leases to run out (a runner that died), then walk again.
            time.sleep(min(self.tick, 0.5))
            self.claimer.release_dead_runners()
            self.claimer.restart()
            self.exhausted = False
            self._beat()
            return True
        self._settle(self._drain())
        self._beat()
        return True

    def _limit_reached(self) -> bool:
        return self.options.limit is not None and self.claimed >= self.options.limit

    def _fill(self, pool: ThreadPoolExecutor) -> None:
        batch_size = self.options.batch_size
        while not self.exhausted:
            room = self.capacity - len(self.in_flight)
            if self.options.limit is not None:
                room = min(room, self.options.limit - self.claimed)
            if room <= 0 or (room < batch_size and self.in_flight):
                return
            batch = self.claimer.claim(min(room, batch_size))
            if not batch:
                self.exhausted = True
                return
            self.claimed += len(batch)
            self.exhausted = self._limit_reached()
            # Read here: the copies run in threads and touch no rows.
            attached = attachments_of(
                track_ids=[t.pk for t in batch], backend=other_backend(self.target)
            )
            for track in batch:
                self.in_flight[track.pk] = track
                future = pool.submit(
                    track_copy,
                    track=track,
                    target=self.target,
                    attachments=attached.get(track.pk),
                )
                future.add_done_callback(
                    functools.partial(_report_done, self.finished, track)
                )

    def _drain(self) -> list[tuple[Outcome, Track]]:
        """Wait up to a heartbeat for one finished copy, then take every
        other one already there, so rows are settled in batches."""
        try:
            done = [self.finished.get(timeout=self.tick)]
        except queue.Empty:
            return []
        while True:
            try:
                done.append(self.finished.get_nowait())
            except queue.Empty:
                break
        return [(future.result(), track) for future, track in done]

    def _settle(self, done: list[tuple[Outcome, Track]]) -> None:
        failed = []
        for outcome, track in done:
            del self.in_flight[track.pk]
            if outcome.kind == "failed":
                failed.append(outcome)
            else:
                self.verified.append((track, outcome))
        if failed:
            gone = copies_of_deleted_remove(target=self.target, outcomes=failed)
            for outcome in failed:
                if outcome.track_id in gone:
                    self.tally.deleted()
                else:
                    track_fail(runner=self.claimer.runner, outcome=outcome)
                    self.tally.failed(outcome)
        due = (
            not self.in_flight
            or len(self.verified) >= self.options.batch_size
            or time.monotonic() - self.last_flip >= FLIP_EVERY_SECONDS
        )
        if self.verified and due:
            self._flip()

    def _flip(self) -> None:
        self.last_flip = time.monotonic()
        verified, self.verified = self.verified, []
        try:
            flipped = tracks_flip(
                runner=self.claimer.runner, target=self.target, verified=verified
            )
        except BaseException:
            # Not flipped (the transaction did not commit): flipped later.
            self.verified = verified + self.verified
            raise
        lost = [o for t, o in verified if t.pk not in flipped]
        gone = copies_of_deleted_remove(target=self.target, outcomes=lost)
        for track, outcome in verified:
            if track.pk in flipped:
                self.tally.flipped(outcome)
            elif track.pk in gone:
                self.tally.deleted()
            else:
                self.tally.lost()

    def _beat(self) -> None:
        """Renew the leases of the rows in hand (every third of a lease),
        and publish the counters (every second)."""
        now = time.monotonic()
        if now - self.last_renew >= self.heartbeat:
            self.last_renew = now
            held = [*self.in_flight, *(t.pk for t, _ in self.verified)]
            # A row not renewed was taken over (its lease ran out) or
            # deleted: its flip will not match, so this runner no longer
            # touches it.
            self.claimer.renew(held)
        if now - self.last_beat >= PROGRESS_EVERY_SECONDS:
            self.last_beat = now
            self.tally.save()
            if self.progress:
                self.progress(self.tally.run)
