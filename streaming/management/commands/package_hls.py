"""Package tracks into HLS in bulk: every track that lacks a package, or some."""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from dataclasses import asdict
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from streaming.backfill import (
    BackfillPlan,
    BackfillResult,
    UnknownTracks,
    hls_backfill_plan,
    hls_backfill_track,
)
from streaming.services import hls_packages_retire_due

# Without a terminal, queued tracks are reported at most this often (each
# build is reported as it finishes: it takes seconds anyway).
_LINE_SECONDS = 5.0


class Command(BaseCommand):
    help = (
        "Package every track without a ready HLS package for the current "
        "settings (newest first; taken-down tracks are skipped), or only "
        "--track ID. Builds in this process, one track at a time, unless "
        "--queue hands them to the task workers. Then deletes the packages "
        "superseded longer than HLS_SUPERSEDED_GRACE_SECONDS ago."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--track",
            action="append",
            default=[],
            dest="tracks",
            metavar="ID",
            help="only this track (repeatable)",
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="build again even where a ready package exists (same directory)",
        )
        parser.add_argument("--limit", type=int, help="package at most this many")
        parser.add_argument(
            "--queue",
            action="store_true",
            help="enqueue tasks for the workers (db_worker) instead of building here",
        )
        parser.add_argument(
            "--json", action="store_true", help="summary as JSON on stdout"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["limit"] is not None and options["limit"] < 1:
            raise CommandError("--limit must be at least 1")
        try:
            plan = hls_backfill_plan(
                track_ids=options["tracks"],
                force=options["force"],
                limit=options["limit"],
            )
        except UnknownTracks as exc:
            raise CommandError(str(exc)) from exc
        started = time.monotonic()
        results: list[BackfillResult] = []
        progress = _Progress(self, options, total=len(plan.track_ids))
        interrupted = False
        try:
            for track_id in plan.track_ids:
                result = hls_backfill_track(
                    track_id=track_id, force=options["force"], queue=options["queue"]
                )
                results.append(result)
                progress.update(result, done=len(results))
        except KeyboardInterrupt:
            interrupted = True
        finally:
            progress.close()
        summary = _summary(plan, results, time.monotonic() - started, options)
        summary["interrupted"] = interrupted
        # Superseded packages whose grace is over go now too (the workers
        # also retire each one when its time comes).
        retired = hls_packages_retire_due() if not interrupted else None
        summary["retired"] = asdict(retired) if retired is not None else None
        if options["json"]:
            self.stdout.write(json.dumps(summary, indent=2))
        else:
            self.stdout.write(_summary_text(summary))
        if interrupted:
            raise CommandError(
                "interrupted; the package being built was marked failed "
                "(interrupted), rerun to continue",
                returncode=130,
            )
        if summary["failed"]:
            raise CommandError(
                f"{summary['failed']} package(s) failed: "
                + ", ".join(f"{k}={v}" for k, v in sorted(summary["failures"].items()))
                + ". See the admin's HLS packages page; rerun to retry."
            )


class _Progress:
    """A live bar on a terminal (tqdm), plain lines on stderr otherwise."""

    def __init__(self, command: BaseCommand, options: dict[str, Any], total: int):
        self._command = command
        self._total = total
        self._queue = bool(options["queue"])
        self._bar: Any = None
        self._last_line = 0.0
        self._audio = 0.0
        self._failed = 0
        self._started = time.monotonic()
        if total and command.stderr.isatty() and not options["json"]:
            from tqdm import tqdm

            self._bar = tqdm(
                total=total, unit="track", dynamic_ncols=True, file=sys.stderr
            )

    def update(self, result: BackfillResult, *, done: int) -> None:
        self._audio += result.audio_seconds
        self._failed += result.outcome == "failed"
        rtf = self._audio / max(time.monotonic() - self._started, 1e-6)
        if self._bar is not None:
            if result.outcome == "failed":
                self._bar.write(_failure_line(result))
            self._bar.set_postfix_str(
                f"rtf={rtf:.1f}x failed={self._failed}", refresh=False
            )
            self._bar.update(1)
            return
        if self._queue and done < self._total:
            if time.monotonic() - self._last_line < _LINE_SECONDS:
                return
            self._last_line = time.monotonic()
        line = f"package_hls: {done}/{self._total} {result.track_id} {result.outcome}"
        if result.outcome == "failed":
            line += f" {result.error_code}: {result.error}"
        elif result.outcome == "ready":
            line += (
                f" ({result.audio_seconds:.1f} s of audio in {result.seconds:.1f} s,"
                f" run rtf {rtf:.1f}x)"
            )
        self._command.stderr.write(line)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _failure_line(result: BackfillResult) -> str:
    return f"failed {result.track_id}: {result.error_code}: {result.error}"


def _summary(
    plan: BackfillPlan,
    results: list[BackfillResult],
    seconds: float,
    options: dict[str, Any],
) -> dict[str, Any]:
    outcomes = Counter(r.outcome for r in results)
    failed = [r for r in results if r.outcome == "failed"]
    audio_seconds = sum(r.audio_seconds for r in results)
    building = not options["queue"]
    return {
        "mode": "build" if building else "queue",
        "force": options["force"],
        "selected": len(plan.track_ids),
        "ready": outcomes["ready"],
        "failed": outcomes["failed"],
        "queued": outcomes["queued"],
        # Held by another process (a worker) under a live lease.
        "busy": outcomes["busy"],
        "failures": dict(Counter(r.error_code for r in failed)),
        "failed_tracks": [
            {
                "track": r.track_id,
                "package": r.package_id,
                "code": r.error_code,
                "error": r.error,
            }
            for r in failed
        ],
        "skipped": {
            "taken_down": len(plan.taken_down),
            "already_ready": plan.already_ready,
            # Deleted or taken down after the plan was made.
            "during_run": outcomes["skipped"],
        },
        "taken_down_tracks": [str(pk) for pk in plan.taken_down],
        "audio_seconds": round(audio_seconds, 3),
        "seconds": round(seconds, 3),
        # Seconds of audio packaged per second of wall time.
        "realtime_factor": (
            round(audio_seconds / seconds, 2) if building and seconds > 0 else None
        ),
        "tracks": [asdict(r) for r in results],
    }


def _summary_text(summary: dict[str, Any]) -> str:
    skipped = summary["skipped"]
    lines = [
        f"{summary['selected']} track(s) selected in {summary['seconds']:.1f} s: "
        + (
            f"{summary['ready']} ready, {summary['failed']} failed"
            if summary["mode"] == "build"
            else f"{summary['queued']} queued for the task workers"
        )
        + (f", {summary['busy']} busy elsewhere" if summary["busy"] else ""),
    ]
    if summary["realtime_factor"] is not None:
        lines.append(
            f"  {summary['audio_seconds']:.1f} s of audio packaged, "
            f"real-time factor {summary['realtime_factor']:.1f}x"
        )
    lines.append(
        f"  skipped: {skipped['taken_down']} taken down, "
        f"{skipped['already_ready']} already ready"
        + (
            f", {skipped['during_run']} deleted or taken down during the run"
            if skipped["during_run"]
            else ""
        )
    )
    if retired := summary.get("retired"):
        lines.append(
            f"  retired: {retired['packages']} superseded package(s) past their "
            f"grace period, {retired['files']} file(s), {retired['bytes']:,} bytes"
            + (
                f"; {retired['failed']} could not be deleted now (storage "
                "unavailable), left for the next run"
                if retired["failed"]
                else ""
            )
        )
    for code, count in sorted(summary["failures"].items()):
        lines.append(f"  failed: {code} x{count}")
    for failure in summary["failed_tracks"][:20]:
        lines.append(
            f"    {failure['track']} {failure['code']}: {failure['error'][:200]}"
        )
    return "\n".join(lines)
