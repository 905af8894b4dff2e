"""Claims: rows taken in id order under short leases that a heartbeat renews.

A runner walks the rows still on the source backend in id order, through a
partial index that holds only those rows (`track_local_by_id`,
`track_s3_by_id`), so a claim costs the same at 0 % or 99 % moved. It
remembers where it got to, passing over rows other runners hold; when it
reaches the end it starts over once from the beginning, for rows whose
leases ran out meanwhile (a runner that died). Leases are short and the
runner renews those of the rows it holds every few seconds; a row whose
lease ran out is free for anyone, and its old holder can no longer flip it.
A runner on the same host whose process is gone (killed, out of memory) is
not waited for: its rows are freed at once.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from tracks.migration.plan import migration_selection, other_backend
from tracks.models import MigrationState, Track

# A dead runner's rows are free this long after its last heartbeat.
DEFAULT_LEASE_SECONDS = 10
BUSY_STATES = (MigrationState.CLAIMED, MigrationState.COPYING, MigrationState.VERIFIED)

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


def runner_name() -> str:
    """Who holds a claim: host, process and a per-run nonce."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"[:128]


def _dead_here(runner: str) -> bool:
    """Whether `runner` ran on this host in a process that no longer exists.

    A reused process id counts as alive (its rows then wait for their
    lease), so a mistake can only delay a takeover, never make one early.
    """
    parts = runner.rsplit(":", 2)
    if len(parts) != 3 or parts[0] != socket.gethostname() or not parts[1].isdigit():
        return False
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, another user's
    return False


class Claimer:
    """One runner's claims, leases and place in the walk."""

    def __init__(
        self,
        *,
        runner: str,
        target: str,
        lease_seconds: int,
        track_ids: list[str] | None = None,
    ) -> None:
        self.runner = runner
        self.target = target
        self.lease_seconds = lease_seconds
        self.track_ids = track_ids or []
        self._after: Any = None  # the last id claimed in this pass
        self._rewound = False

    def _free(self) -> Any:
        now = timezone.now()
        rows = (
            migration_selection(target=self.target, track_ids=self.track_ids)
            .filter(
                Q(migration_lease_until__isnull=True) | Q(migration_lease_until__lt=now)
            )
            # Rows this run failed are left alone until the next run.
            .exclude(
                migration_state=MigrationState.FAILED, migration_runner=self.runner
            )
        )
        return rows

    def claim(self, count: int) -> list[Track]:
        """Up to `count` free rows for this runner, in a short transaction.

        Each returned row carries `resumed`: whether an earlier attempt may
        have left a copy behind on the target.
        """
        claimed = self._claim_after(count, self._after)
        if not claimed and self._after is not None and not self._rewound:
            # The end of the walk: once more from the start, for rows freed
            # behind us (expired leases, released claims).
            self._rewound = True
            claimed = self._claim_after(count, None)
        if claimed:
            self._after = claimed[-1].pk
        return claimed

    def restart(self) -> None:
        """Walk again from the start (after waiting for other runners)."""
        self._after = None
        self._rewound = False

    def _claim_after(self, count: int, after: Any) -> list[Track]:
        rows = self._free()
        if after is not None:
            rows = rows.filter(pk__gt=after)
        # Copying from the claim on: the copy starts at once, and from then
        # on an object may exist, so whoever takes a row over checks the
        # target first. (A separate "claimed" write was a second row
        # version per row for nothing a crash could tell apart.)
        claim = {
            "migration_state": MigrationState.COPYING,
            "migration_target": self.target,
            "migration_runner": self.runner,
            "migration_lease_until": timezone.now()
            + timedelta(seconds=self.lease_seconds),
            "migration_error": "",
        }
        if connection.features.has_select_for_update_skip_locked:
            # The locked rows are read whole, so the claim needs no second
            # SELECT: the columns the copy reads are not the ones it changes.
            with transaction.atomic():
                claimed = list(
                    rows.select_for_update(skip_locked=True)
                    .only(*COPY_FIELDS)
                    .order_by("pk")[:count]
                )
                Track.objects.filter(pk__in=[t.pk for t in claimed]).update(**claim)
            for track in claimed:
                track.resumed = track.migration_state != ""
                for name, value in claim.items():
                    setattr(track, name, value)
            return claimed
        # No SKIP LOCKED (SQLite): a conditional UPDATE per row decides who
        # wins; it re-checks that the row is still free and on the source.
        prior = {}
        candidates = rows.order_by("pk").values_list("pk", "migration_state")
        for pk, state in candidates[: count * 2]:
            if rows.filter(pk=pk).update(**claim) == 1:
                prior[pk] = state
            if len(prior) >= count:
                break
        claimed = list(
            Track.objects.filter(pk__in=list(prior), migration_runner=self.runner)
            .only(*COPY_FIELDS)
            .order_by("pk")
        )
        for track in claimed:
            track.resumed = prior[track.pk] != ""
        return claimed

    def renew(self, pks: list[Any]) -> set[Any]:
        """Extend the leases of rows this runner still holds; returns their
        ids (a row missing from it was taken over, or deleted)."""
        if not pks:
            return set()
        now = timezone.now()
        held = Track.objects.filter(
            pk__in=pks,
            migration_runner=self.runner,
            migration_state__in=BUSY_STATES,
            migration_lease_until__gte=now,
        )
        ids = set(held.values_list("pk", flat=True))
        held.filter(pk__in=ids).update(
            migration_lease_until=now + timedelta(seconds=self.lease_seconds)
        )
        return ids

    def release_own(self, *, keep: list[Any]) -> int:
        """Free this runner's claims on rows it no longer has in hand (but
        `keep`): after a database outage, a claim may have committed while
        its answer was lost. Returns how many."""
        return (
            Track.objects.filter(
                migration_runner=self.runner, migration_state__in=BUSY_STATES
            )
            .exclude(pk__in=keep)
            .update(migration_lease_until=None)
        )

    def release_dead_runners(self) -> int:
        """Free the rows of runners that died on this host; returns how many."""
        busy = Track.objects.filter(
            migration_state__in=BUSY_STATES,
            migration_lease_until__gte=timezone.now(),
        ).exclude(migration_runner=self.runner)
        runners = set(busy.values_list("migration_runner", flat=True).distinct())
        dead = [r for r in runners if _dead_here(r)]
        if not dead:
            return 0
        return busy.filter(migration_runner__in=dead).update(migration_lease_until=None)

    def held_by_others(self) -> bool:
        """Whether another live runner holds rows of this selection (through
        the partial index of busy rows: a few hundred at most)."""
        rows = Track.objects.filter(
            migration_state__in=BUSY_STATES,
            migration_lease_until__gte=timezone.now(),
            storage_backend=other_backend(self.target),
        ).exclude(migration_runner=self.runner)
        if self.track_ids:
            rows = rows.filter(pk__in=self.track_ids)
        return rows.exists()
