"""Move tracks between local disk and S3, online and crash-safe; or audit them."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from tracks.attachments import attachment_providers
from tracks.migration import (
    MoveOptions,
    attachments_plan,
    is_missing_reason,
    migration_plan,
    run_attached,
    storage_migrate,
    track_failures,
)
from tracks.models import MigrationRunStatus, StorageMigrationRun
from tracks.storage_audit import (
    storage_audit,
    storage_delete_orphans,
    storage_purge_local,
)


def _mb(n: float) -> str:
    return f"{n / 1_000_000:.1f} MB"


def _attached_text(plan: dict[str, int]) -> str:
    """ "with 48 package files, 1.2 MB" for the providers in a plan."""
    parts = [
        f"{plan[f'{p.name}_files']} {p.name} files, {_mb(plan[f'{p.name}_bytes'])}"
        for p in attachment_providers()
        if plan.get(f"{p.name}_files")
    ]
    return f" (with {'; '.join(parts)})" if parts else ""


class Command(BaseCommand):
    help = (
        "Move tracks to --to s3|local (claim, copy, verify, flip), audit storage "
        "with --verify-only, or delete old local copies with --purge-local."
    )
    # Only the project's configuration rules (fatal in production): the
    # other checks (URLs, admin, DRF) import the web stack, a ninth of a
    # re-run with nothing to move, and concern no part of this command.
    requires_system_checks = ["veza"]

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--to", choices=["s3", "local"], help="target backend")
        parser.add_argument(
            "--dry-run", action="store_true", help="show what would move"
        )
        parser.add_argument("--workers", type=int, default=8, help="parallel transfers")
        parser.add_argument(
            "--processes",
            type=int,
            default=1,
            help="runner processes on this host, each with --workers threads "
            "(small files are CPU-bound in one Python process)",
        )
        parser.add_argument("--run-group", default="", help=argparse.SUPPRESS)
        parser.add_argument("--batch-size", type=int, default=64, help="rows per claim")
        parser.add_argument("--limit", type=int, help="move at most this many rows")
        parser.add_argument(
            "--track",
            action="append",
            default=[],
            dest="tracks",
            metavar="ID",
            help="only this track (repeatable)",
        )
        parser.add_argument(
            "--lease-seconds",
            type=int,
            default=300,
            help="how long a claim holds before others may take over",
        )
        parser.add_argument(
            "--allow-missing",
            action="store_true",
            help="exit 0 even if some source files are missing",
        )
        parser.add_argument(
            "--verify-only",
            action="store_true",
            help="audit database, disk and bucket; change nothing",
        )
        parser.add_argument(
            "--delete-orphans",
            action="store_true",
            help="with --verify-only: delete objects/files with no row",
        )
        parser.add_argument(
            "--yes", action="store_true", help="do not ask for confirmation"
        )
        parser.add_argument(
            "--purge-local",
            action="store_true",
            help="delete local copies of rows verified on S3 (and of the files "
            "attached to them, such as HLS packages)",
        )
        parser.add_argument(
            "--older-than",
            type=float,
            metavar="DAYS",
            help="with --purge-local: verified at least DAYS ago",
        )
        parser.add_argument(
            "--json", action="store_true", help="summary as JSON on stdout"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["verify_only"]:
            return self._verify(options)
        if options["purge_local"]:
            return self._purge(options)
        target = options["to"]
        if target is None:
            raise CommandError("say where to move tracks: --to s3 or --to local")
        if options["workers"] < 1 or options["batch_size"] < 1:
            raise CommandError("--workers and --batch-size must be at least 1")
        if options["workers"] > settings.AWS_S3_MAX_POOL_CONNECTIONS:
            # More threads than pooled connections means reconnect churn.
            raise CommandError(
                f"--workers {options['workers']} exceeds "
                f"AWS_S3_MAX_POOL_CONNECTIONS={settings.AWS_S3_MAX_POOL_CONNECTIONS}; "
                "raise that setting or use fewer"
            )
        if options["dry_run"]:
            plan = migration_plan(target=target, track_ids=options["tracks"])
            if options["limit"]:
                plan["rows"] = min(plan["rows"], options["limit"])
            # Files that move with the tracks (HLS packages), when there are any.
            plan.update(attachments_plan(target=target, track_ids=options["tracks"]))
            return self._emit(
                options,
                {"dry_run": True, "target": target, **plan},
                f"Would move {plan['rows']} track(s), {_mb(plan['bytes'])}"
                f"{_attached_text(plan)}, to {target}.",
            )
        if options["processes"] > 1:
            run = self._run_processes(options)
        else:
            run = storage_migrate(
                options=MoveOptions(
                    target=target,
                    workers=options["workers"],
                    batch_size=options["batch_size"],
                    limit=options["limit"],
                    track_ids=options["tracks"],
                    lease_seconds=options["lease_seconds"],
                    started_by=f"manage.py migrate_storage{options['run_group']}",
                ),
                progress=self._progress_reporter(options),
            )
        self._finish_progress()
        summary = self._summary(run)
        self._emit(options, summary, self._summary_text(run))
        failures = {k: v for k, v in run.failures.items() if v}
        if failures and not (
            options["allow_missing"] and all(is_missing_reason(r) for r in failures)
        ):
            raise CommandError(
                f"{run.failed + run.skipped} track(s) did not move: "
                + ", ".join(f"{k}={v}" for k, v in sorted(failures.items()))
                + ". See the admin's storage page or `--verify-only`; rerun to retry."
            )

    # Several processes ------------------------------------------------------------

    def _run_processes(self, options: dict[str, Any]) -> StorageMigrationRun:
        """Start N runners of this command and report them as one run.

        Each runner claims rows like a runner on another host would; their
        runs are recorded separately and summed here.
        """
        count = options["processes"]
        group = f" [group {uuid.uuid4().hex[:12]}]"
        limit = options["limit"]
        children = []
        for i in range(count):
            argv = [
                sys.executable,
                str(Path(settings.BASE_DIR) / "manage.py"),
                "migrate_storage",
                "--to",
                options["to"],
                "--workers",
                str(options["workers"]),
                "--batch-size",
                str(options["batch_size"]),
                "--lease-seconds",
                str(options["lease_seconds"]),
                "--json",
                "--run-group",
                group,
            ]
            for track in options["tracks"]:
                argv += ["--track", track]
            if limit is not None:
                argv += [
                    "--limit",
                    str(limit // count + (1 if i < limit % count else 0)),
                ]
            children.append(
                subprocess.Popen(  # noqa: S603  (our own command, fixed arguments)
                    argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
                )
            )
        report = self._progress_reporter(options)
        try:
            while any(child.poll() is None for child in children):
                time.sleep(1)
                combined = self._combined_run(group, options["to"])
                if combined is not None:
                    report(combined)
        finally:
            for child in children:
                if child.poll() is None:
                    child.terminate()
        errors = [c.stderr.read() if c.stderr else "" for c in children]
        combined = self._combined_run(group, options["to"])
        if combined is None:
            raise CommandError(
                "no runner started: " + " | ".join(e[-500:] for e in errors)
            )
        if any(c.returncode not in (0, 1) for c in children):
            combined.status = MigrationRunStatus.INTERRUPTED
        return combined

    @staticmethod
    def _combined_run(group: str, target: str) -> StorageMigrationRun | None:
        runs = list(StorageMigrationRun.objects.filter(started_by__endswith=group))
        if not runs:
            return None
        combined = StorageMigrationRun(
            target=target, started_by=f"manage.py migrate_storage{group}"
        )
        combined.pk = ",".join(str(r.pk) for r in runs)
        combined.selected = max(r.selected for r in runs)
        combined.selected_bytes = max(r.selected_bytes for r in runs)
        for field in ("moved", "already_there", "skipped", "failed", "bytes_moved"):
            setattr(combined, field, sum(getattr(r, field) for r in runs))
        # Each runner counted the rows on the target when it started.
        combined.options["on_target"] = min(r.options.get("on_target", 0) for r in runs)
        attached = run_attached(combined)
        for r in runs:
            for reason, n in r.failures.items():
                combined.failures[reason] = combined.failures.get(reason, 0) + n
            for provider, counts in run_attached(r).items():
                total = attached.setdefault(provider, {})
                for key, n in counts.items():
                    total[key] = total.get(key, 0) + n
        combined.started_at = min(r.started_at for r in runs)
        combined.heartbeat_at = max(r.heartbeat_at for r in runs)
        finished = [r.finished_at for r in runs if r.finished_at]
        combined.finished_at = max(finished) if len(finished) == len(runs) else None
        statuses = {r.status for r in runs}
        combined.status = (
            MigrationRunStatus.RUNNING
            if MigrationRunStatus.RUNNING in statuses
            else MigrationRunStatus.FAILED
            if MigrationRunStatus.FAILED in statuses
            else MigrationRunStatus.INTERRUPTED
            if MigrationRunStatus.INTERRUPTED in statuses
            else MigrationRunStatus.SUCCEEDED
        )
        return combined

    # Output -------------------------------------------------------------------

    def _emit(self, options: dict[str, Any], data: dict[str, Any], text: str) -> None:
        if options["json"]:
            self.stdout.write(json.dumps(data, indent=2, default=str))
        else:
            self.stdout.write(text)

    def _summary(self, run: StorageMigrationRun) -> dict[str, Any]:
        return {
            "run": run.pk,
            "target": run.target,
            "status": run.status,
            "selected": run.selected,
            "moved": run.moved,
            "already_there": run.already_there,
            "on_target": run.options.get("on_target", 0),
            "skipped": run.skipped,
            "failed": run.failed,
            "failures": run.failures,
            "failed_tracks": [
                {"track": str(t.pk), "reason": t.migration_error}
                for t in track_failures(limit=50)
            ],
            "bytes": run.bytes_moved,
            **self._attached_summary(run),
            "seconds": round(run.elapsed_seconds, 3),
            "files_per_second": round(run.files_per_second, 1),
            "bytes_per_second": round(run.bytes_per_second),
        }

    @staticmethod
    def _attached_summary(run: StorageMigrationRun) -> dict[str, int]:
        """`package_files`, `package_bytes` (copied with the tracks moved) and
        `package_already_there`, for every provider (bytes is the originals')."""
        counts = run_attached(run)
        summary: dict[str, int] = {}
        for provider in attachment_providers():
            mine = counts.get(provider.name, {})
            for key in ("files", "bytes", "already_there"):
                summary[f"{provider.name}_{key}"] = mine.get(key, 0)
        return summary

    def _summary_text(self, run: StorageMigrationRun) -> str:
        lines = [
            f"Run {run.pk} to {run.target}: {run.status}",
            f"  moved {run.moved}, already there {run.already_there}, "
            f"skipped {run.skipped}, failed {run.failed}; "
            f"{run.options.get('on_target', 0)} already on {run.target} before "
            "the run",
            f"  {_mb(run.bytes_moved)} in {run.elapsed_seconds:.1f} s "
            f"({run.files_per_second:.1f} files/s, {_mb(run.bytes_per_second)}/s)",
        ]
        for provider, counts in sorted(run_attached(run).items()):
            if counts.get("files") or counts.get("already_there"):
                lines.append(
                    f"  {provider} files: {counts.get('files', 0)} copied "
                    f"({_mb(counts.get('bytes', 0))}), "
                    f"{counts.get('already_there', 0)} already there"
                )
        for reason, count in sorted(run.failures.items()):
            lines.append(f"  failed: {reason} x{count}")
        return "\n".join(lines)

    def _progress_reporter(self, options: dict[str, Any]) -> Any:
        self._bar: Any = None
        self._last_line = 0.0
        interactive = sys.stderr.isatty() and not options["json"]

        def report(run: StorageMigrationRun) -> None:
            if interactive:
                from tqdm import tqdm

                if self._bar is None:
                    self._bar = tqdm(
                        total=run.selected, unit="file", dynamic_ncols=True
                    )
                self._bar.n = run.done
                self._bar.set_postfix_str(
                    f"{_mb(run.bytes_per_second)}/s failed={run.failed}", refresh=False
                )
                self._bar.refresh()
            elif time.monotonic() - self._last_line >= 5:
                self._last_line = time.monotonic()
                eta = run.eta_seconds
                eta_text = "?" if eta is None else f"{eta:.0f} s"
                sys.stderr.write(
                    f"migrate_storage: {run.done}/{run.selected} files, "
                    f"{run.files_per_second:.1f} files/s, "
                    f"{_mb(run.bytes_per_second)}/s, "
                    f"failed {run.failed}, ETA {eta_text}\n"
                )

        return report

    def _finish_progress(self) -> None:
        if self._bar is not None:
            self._bar.close()

    # Audit and purge ------------------------------------------------------------

    def _verify(self, options: dict[str, Any]) -> None:
        backends = [options["to"]] if options["to"] else ["local", "s3"]
        if not settings.AWS_S3_ENABLED and "s3" in backends:
            backends.remove("s3")
        report = storage_audit(backends=backends)
        if options["delete_orphans"] and report.orphans:
            if not options["yes"]:
                answer = input(f"Delete {len(report.orphans)} orphan(s)? Type 'yes': ")
                if answer.strip() != "yes":
                    raise CommandError("nothing deleted")
            storage_delete_orphans(report=report)
        attached = "".join(
            f" and {n} {name} file(s)" for name, n in report.attached_checked.items()
        )
        text = (
            f"Checked {report.checked} track(s){attached}: "
            f"{len(report.missing)} missing, "
            f"{len(report.mismatched)} differ, {len(report.orphans)} orphan(s)"
            + (f", {report.deleted_orphans} deleted" if report.deleted_orphans else "")
        )
        details = [f"  missing: {m['backend']} {m['key']}" for m in report.missing]
        details += [f"  differs: {m['backend']} {m['key']}" for m in report.mismatched]
        details += [f"  orphan: {o['backend']} {o['key']}" for o in report.orphans]
        self._emit(options, report.as_dict(), "\n".join([text, *details]))
        if report.missing or report.mismatched:
            raise CommandError("storage does not match the database")

    def _purge(self, options: dict[str, Any]) -> None:
        if options["older_than"] is None:
            raise CommandError("--purge-local needs --older-than DAYS")
        result = storage_purge_local(
            older_than_days=options["older_than"], dry_run=options["dry_run"]
        )
        verb = "Would purge" if options["dry_run"] else "Purged"
        lines = [
            f"{verb} {result['purged']} local copies ({_mb(result['bytes'])}); "
            f"kept {result['kept']} whose S3 object did not verify."
        ]
        for provider in attachment_providers():
            name = provider.name
            if f"{name}_purged" in result:
                lines.append(
                    f"{verb} the local files of {result[f'{name}_purged']} "
                    f"{name}(s): {result[f'{name}_files']} files "
                    f"({_mb(result[f'{name}_bytes'])}); kept "
                    f"{result[f'{name}_kept']} whose S3 objects did not verify."
                )
        self._emit(options, result, "\n".join(lines))
