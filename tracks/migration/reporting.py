"""Reporting: a run as JSON and text, and progress on a terminal or a log."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from tracks.attachments import attachment_providers
from tracks.migration.tallying import run_attached
from tracks.models import MigrationState, StorageMigrationRun, Track


def megabytes(n: float) -> str:
    return f"{n / 1_000_000:.1f} MB"


def attached_text(plan: dict[str, int]) -> str:
    """ "with 48 package files, 1.2 MB" for the providers in a plan."""
    parts = [
        f"{plan[f'{name}_files']} {name} files, {megabytes(plan[f'{name}_bytes'])}"
        for name in (p.name for p in attachment_providers())
        if plan.get(f"{name}_files")
    ]
    return f" (with {'; '.join(parts)})" if parts else ""


def track_failures(*, limit: int = 100) -> list[Track]:
    """Rows whose last move failed, with the reason (partial index, id order)."""
    failed = Track.objects.filter(migration_state=MigrationState.FAILED)
    return list(
        failed.order_by("pk").only("id", "migration_error", "migration_target")[:limit]
    )


def run_summary(run: StorageMigrationRun) -> dict[str, Any]:
    return {
        "run": run.pk,
        "target": run.target,
        "status": run.status,
        "selected": run.selected,
        "moved": run.moved,
        "already_there": run.already_there,
        "on_target": run.options.get("on_target", 0),
        "deleted": run.options.get("deleted", 0),
        "skipped": run.skipped,
        "failed": run.failed,
        "failures": run.failures,
        "failed_tracks": [
            {"track": str(t.pk), "reason": t.migration_error}
            for t in (track_failures(limit=50) if run.failed else [])
        ],
        "bytes": run.bytes_moved,
        **_attached_summary(run),
        "seconds": round(run.elapsed_seconds, 3),
        "files_per_second": round(run.files_per_second, 1),
        "bytes_per_second": round(run.bytes_per_second),
    }


def _attached_summary(run: StorageMigrationRun) -> dict[str, int]:
    """`package_files`, `package_bytes` (copied with the tracks moved) and
    `package_already_there`, for every provider."""
    counts = run_attached(run)
    summary: dict[str, int] = {}
    for provider in attachment_providers():
        mine = counts.get(provider.name, {})
        for key in ("files", "bytes", "already_there"):
            summary[f"{provider.name}_{key}"] = mine.get(key, 0)
    return summary


def run_text(run: StorageMigrationRun) -> str:
    lines = [
        f"Run {run.pk} to {run.target}: {run.status}",
        f"  moved {run.moved}, already there {run.already_there}, "
        f"skipped {run.skipped}, failed {run.failed}; "
        f"{run.options.get('on_target', 0)} already on {run.target} before the run",
        f"  {megabytes(run.bytes_moved)} in {run.elapsed_seconds:.1f} s "
        f"({run.files_per_second:.1f} files/s, {megabytes(run.bytes_per_second)}/s)",
    ]
    if run.options.get("deleted"):
        lines.append(f"  deleted while being moved: {run.options['deleted']}")
    for provider, counts in sorted(run_attached(run).items()):
        if counts.get("files") or counts.get("already_there"):
            lines.append(
                f"  {provider} files: {counts.get('files', 0)} copied "
                f"({megabytes(counts.get('bytes', 0))}), "
                f"{counts.get('already_there', 0)} already there"
            )
    for reason, count in sorted(run.failures.items()):
        lines.append(f"  failed: {reason} x{count}")
    return "\n".join(lines)


def failures_text(run: StorageMigrationRun) -> str:
    """`reason=count, ...` of a run's failures, for one-line messages."""
    return ", ".join(f"{k}={v}" for k, v in sorted(run.failures.items()) if v)


class ProgressReporter:
    """A bar on a terminal, a line every 5 s otherwise (logs, CI)."""

    def __init__(self, *, quiet: bool, stream: TextIO = sys.stderr) -> None:
        self.interactive = stream.isatty() and not quiet
        self.stream = stream
        self.bar: Any = None
        self.last_line = 0.0

    def __call__(self, run: StorageMigrationRun) -> None:
        if self.interactive:
            from tqdm import tqdm

            if self.bar is None:
                self.bar = tqdm(total=run.selected, unit="file", dynamic_ncols=True)
            self.bar.n = run.done
            self.bar.set_postfix_str(
                f"{megabytes(run.bytes_per_second)}/s failed={run.failed}",
                refresh=False,
            )
            self.bar.refresh()
        elif time.monotonic() - self.last_line >= 5:
            self.last_line = time.monotonic()
            eta = run.eta_seconds
            eta_text = "?" if eta is None else f"{eta:.0f} s"
            self.stream.write(
                f"migrate_storage: {run.done}/{run.selected} files, "
                f"{run.files_per_second:.1f} files/s, "
                f"{megabytes(run.bytes_per_second)}/s, "
                f"failed {run.failed}, ETA {eta_text}\n"
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
