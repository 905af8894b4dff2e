"""Tallying: a run's counters, kept on its StorageMigrationRun row and in metrics."""

from __future__ import annotations

import os
import socket
from typing import Any

from django.utils import timezone

from tracks.migration.copying import LOST_LEASE, Outcome
from tracks.models import MigrationRunStatus, StorageMigrationRun
from veza import metrics


def run_attached(run: StorageMigrationRun) -> dict[str, dict[str, int]]:
    """Attached files a run copied, by provider: files, bytes, already_there.

    Kept in the run's `options` JSON (the run has no columns for them).
    """
    attached: dict[str, dict[str, int]] = run.options.setdefault("attached", {})
    return attached


class RunTally:
    """What one run did so far; `save` writes it for the admin and /metrics."""

    def __init__(
        self,
        *,
        target: str,
        started_by: str,
        options: dict[str, Any],
        selected: int,
        selected_bytes: int,
    ) -> None:
        self.target = target
        self.run = StorageMigrationRun.objects.create(
            target=target,
            started_by=started_by,
            hostname=socket.gethostname(),
            pid=os.getpid(),
            options=options,
            selected=selected,
            selected_bytes=selected_bytes,
        )
        run_attached(self.run)

    def failed(self, outcome: Outcome) -> None:
        self.run.failed += 1
        self._reason(outcome.reason)
        metrics.STORAGE_MIGRATION_ROWS.labels(
            self.target, f"failed_{outcome.reason}"
        ).inc()

    def lost(self) -> None:
        """A verified copy whose row another runner took over (or deleted)."""
        self.run.skipped += 1
        self._reason(LOST_LEASE)
        metrics.STORAGE_MIGRATION_ROWS.labels(self.target, LOST_LEASE).inc()

    def deleted(self) -> None:
        """A row deleted while it was being copied: not a failure of the run."""
        self.run.options["deleted"] = self.run.options.get("deleted", 0) + 1
        metrics.STORAGE_MIGRATION_ROWS.labels(self.target, "deleted").inc()

    def flipped(self, outcome: Outcome) -> None:
        totals = run_attached(self.run)
        for provider, count in outcome.attached.items():
            total = totals.setdefault(
                provider, {"files": 0, "bytes": 0, "already_there": 0}
            )
            total["files"] += count.files
            total["bytes"] += count.bytes
            total["already_there"] += count.already_there
        if outcome.kind == "moved":
            self.run.moved += 1
            self.run.bytes_moved += outcome.size
            metrics.STORAGE_MIGRATION_ROWS.labels(self.target, "moved").inc()
            metrics.STORAGE_MIGRATION_BYTES.labels(self.target).inc(outcome.size)
        else:
            self.run.already_there += 1
            metrics.STORAGE_MIGRATION_ROWS.labels(self.target, "already_there").inc()

    def _reason(self, reason: str) -> None:
        self.run.failures[reason] = self.run.failures.get(reason, 0) + 1

    def save(self) -> None:
        self.run.save()

    def finish(self, *, interrupted: bool = False) -> StorageMigrationRun:
        if interrupted:
            self.run.status = MigrationRunStatus.INTERRUPTED
        elif self.run.failed or self.run.skipped:
            self.run.status = MigrationRunStatus.FAILED
        else:
            self.run.status = MigrationRunStatus.SUCCEEDED
        self.run.finished_at = timezone.now()
        self.run.save()
        return self.run
