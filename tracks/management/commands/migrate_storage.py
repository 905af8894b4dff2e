"""Move tracks between local disk and S3, online and crash-safe; or audit them."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from tracks.migration import (
    MISSING_REASONS,
    MoveOptions,
    migration_plan,
    storage_migrate,
    track_failures,
)
from tracks.models import StorageMigrationRun
from tracks.storage_audit import (
    storage_audit,
    storage_delete_orphans,
    storage_purge_local,
)


def _mb(n: float) -> str:
    return f"{n / 1_000_000:.1f} MB"


class Command(BaseCommand):
    help = (
        "Move tracks to --to s3|local (claim, copy, verify, flip), audit storage "
        "with --verify-only, or delete old local copies with --purge-local."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--to", choices=["s3", "local"], help="target backend")
        parser.add_argument(
            "--dry-run", action="store_true", help="show what would move"
        )
        parser.add_argument("--workers", type=int, default=8, help="parallel transfers")
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
            help="delete local copies of rows verified on S3",
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
            return self._emit(
                options,
                {"dry_run": True, "target": target, **plan},
                f"Would move {plan['rows']} track(s), {_mb(plan['bytes'])}, "
                f"to {target}.",
            )
        run = storage_migrate(
            options=MoveOptions(
                target=target,
                workers=options["workers"],
                batch_size=options["batch_size"],
                limit=options["limit"],
                track_ids=options["tracks"],
                lease_seconds=options["lease_seconds"],
                started_by="manage.py migrate_storage",
            ),
            progress=self._progress_reporter(options),
        )
        self._finish_progress()
        summary = self._summary(run)
        self._emit(options, summary, self._summary_text(run))
        failures = {k: v for k, v in run.failures.items() if v}
        if failures and not (
            options["allow_missing"] and set(failures) <= MISSING_REASONS
        ):
            raise CommandError(
                f"{run.failed + run.skipped} track(s) did not move: "
                + ", ".join(f"{k}={v}" for k, v in sorted(failures.items()))
                + ". See the admin's storage page or `--verify-only`; rerun to retry."
            )

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
            "skipped": run.skipped,
            "failed": run.failed,
            "failures": run.failures,
            "failed_tracks": [
                {"track": str(t.pk), "reason": t.migration_error}
                for t in track_failures(limit=50)
            ],
            "bytes": run.bytes_moved,
            "seconds": round(run.elapsed_seconds, 3),
            "files_per_second": round(run.files_per_second, 1),
            "bytes_per_second": round(run.bytes_per_second),
        }

    def _summary_text(self, run: StorageMigrationRun) -> str:
        lines = [
            f"Run {run.pk} to {run.target}: {run.status}",
            f"  moved {run.moved}, already there {run.already_there}, "
            f"skipped {run.skipped}, failed {run.failed}",
            f"  {_mb(run.bytes_moved)} in {run.elapsed_seconds:.1f} s "
            f"({run.files_per_second:.1f} files/s, {_mb(run.bytes_per_second)}/s)",
        ]
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
        text = (
            f"Checked {report.checked} track(s): {len(report.missing)} missing, "
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
        self._emit(
            options,
            result,
            f"{verb} {result['purged']} local copies ({_mb(result['bytes'])}); "
            f"kept {result['kept']} whose S3 object did not verify.",
        )
