"""Move tracks between local disk and S3, online and crash-safe; or audit, or purge."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import InterfaceError, OperationalError

from mediastore.backends import s3_require
from mediastore.errors import S3NotConfigured
from tracks.audit import AuditReport, storage_audit, storage_delete_orphans
from tracks.errors import MigrationDatabaseLost
from tracks.migration.claims import DEFAULT_LEASE_SECONDS
from tracks.migration.copying import is_missing_reason
from tracks.migration.plan import migration_plan
from tracks.migration.reporting import (
    ProgressReporter,
    attached_text,
    failures_text,
    megabytes,
    run_summary,
    run_text,
)
from tracks.migration.runner import (
    DATABASE_OUTAGE_SECONDS,
    MoveOptions,
    storage_migrate,
)
from tracks.purge import storage_purge_local


class Command(BaseCommand):
    help = (
        "Move tracks to --to s3|local (claim, copy, verify, flip), audit storage "
        "with --verify-only, or delete old local copies with --purge-local. "
        "Run it on several hosts (or with --enqueue N) to share the work."
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
            "--batch-size", type=int, default=256, help="rows per claim and per flip"
        )
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
            default=DEFAULT_LEASE_SECONDS,
            help="how long a claim outlives the runner's last heartbeat "
            "(renewed every third of it) before others may take over",
        )
        parser.add_argument(
            "--wait-for-database",
            type=float,
            default=DATABASE_OUTAGE_SECONDS,
            metavar="SECONDS",
            help="how long a run waits for an unreachable database (a restart, "
            "a failover) before it stops",
        )
        parser.add_argument(
            "--enqueue",
            type=int,
            metavar="N",
            help="queue N runners for the task workers (db_worker) and return",
        )
        parser.add_argument(
            "--allow-missing",
            action="store_true",
            help="exit 0 even if some source files are missing",
        )
        parser.add_argument(
            "--verify-only",
            action="store_true",
            help="audit database, disk and bucket from listings; change nothing",
        )
        parser.add_argument(
            "--deep",
            action="store_true",
            help="with --verify-only or --purge-local: read and hash the bytes",
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
        # Whatever the mode, a missing S3 setting is named before any work
        # (a dry run included), not found by the first copy.
        if options["verify_only"]:
            to = options["to"]
            needs_s3 = to == "s3" or (to is None and settings.AWS_S3_ENABLED)
        else:
            # A move reads from S3 or writes to it; a purge checks it.
            needs_s3 = options["purge_local"] or options["to"] is not None
        if needs_s3:
            try:
                s3_require()
            except S3NotConfigured as exc:
                raise CommandError(
                    f"{exc.message} See .env.example and docs/ENV_VARIABLES.md."
                ) from exc
        if options["verify_only"]:
            return self._verify(options)
        if options["purge_local"]:
            return self._purge(options)
        target = options["to"]
        if target is None:
            raise CommandError("say where to move tracks: --to s3 or --to local")
        if options["workers"] < 1 or options["batch_size"] < 1:
            raise CommandError("--workers and --batch-size must be at least 1")
        if options["lease_seconds"] < 1:
            raise CommandError("--lease-seconds must be at least 1")
        if options["wait_for_database"] < 0:
            raise CommandError("--wait-for-database must not be negative")
        if options["workers"] > settings.AWS_S3_MAX_POOL_CONNECTIONS:
            # More threads than pooled connections means reconnect churn.
            raise CommandError(
                f"--workers {options['workers']} exceeds "
                f"AWS_S3_MAX_POOL_CONNECTIONS={settings.AWS_S3_MAX_POOL_CONNECTIONS}; "
                "raise that setting or use fewer"
            )
        move = MoveOptions(
            target=target,
            workers=options["workers"],
            batch_size=options["batch_size"],
            limit=options["limit"],
            track_ids=options["tracks"],
            lease_seconds=options["lease_seconds"],
            database_patience=options["wait_for_database"],
            started_by="manage.py migrate_storage",
        )
        if options["dry_run"]:
            return self._dry_run(options, move)
        if options["enqueue"]:
            return self._enqueue(options, move)
        progress = ProgressReporter(quiet=options["json"])
        try:
            run = storage_migrate(options=move, progress=progress)
        except MigrationDatabaseLost as exc:
            raise CommandError(exc.message) from exc
        except (OperationalError, InterfaceError) as exc:
            # Unreachable from the start: nothing was claimed.
            raise CommandError(
                f"The database is unreachable ({str(exc).strip()}); nothing moved. "
                "Run it again once it is back."
            ) from exc
        finally:
            progress.close()
        self._emit(options, run_summary(run), run_text(run))
        failures = {k: v for k, v in run.failures.items() if v}
        if failures and not (
            options["allow_missing"] and all(is_missing_reason(r) for r in failures)
        ):
            raise CommandError(
                f"{run.failed + run.skipped} track(s) did not move: "
                + failures_text(run)
                + ". See the admin's storage page or `--verify-only`; rerun to retry."
            )

    def _dry_run(self, options: dict[str, Any], move: MoveOptions) -> None:
        plan = migration_plan(
            target=move.target, track_ids=move.track_ids, limit=move.limit
        )
        self._emit(
            options,
            {"dry_run": True, "target": move.target, **plan},
            f"Would move {plan['rows']} track(s), {megabytes(plan['bytes'])}"
            f"{attached_text(plan)}, to {move.target}.",
        )

    def _enqueue(self, options: dict[str, Any], move: MoveOptions) -> None:
        from tracks.tasks import tracks_move

        if options["enqueue"] < 1:
            raise CommandError("--enqueue needs at least 1")
        ids = [
            tracks_move.enqueue(
                target=move.target,
                track_ids=move.track_ids,
                workers=move.workers,
                started_by=f"manage.py migrate_storage --enqueue {options['enqueue']}",
            ).id
            for _ in range(options["enqueue"])
        ]
        self._emit(
            options,
            {"enqueued": ids, "target": move.target},
            f"Queued {len(ids)} runner(s) to {move.target} for the task workers: "
            + ", ".join(str(i) for i in ids)
            + ". Follow them on the admin's storage page.",
        )

    def _emit(self, options: dict[str, Any], data: dict[str, Any], text: str) -> None:
        if options["json"]:
            self.stdout.write(json.dumps(data, indent=2, default=str))
        else:
            self.stdout.write(text)

    # Audit and purge ------------------------------------------------------------

    def _verify(self, options: dict[str, Any]) -> None:
        backends = [options["to"]] if options["to"] else ["local", "s3"]
        if not settings.AWS_S3_ENABLED and "s3" in backends:
            backends.remove("s3")
        report = storage_audit(
            backends=backends,
            deep=options["deep"],
            progress=self._audit_progress(options),
        )
        if options["delete_orphans"] and report.orphans:
            if not options["yes"]:
                answer = input(f"Delete {len(report.orphans)} orphan(s)? Type 'yes': ")
                if answer.strip() != "yes":
                    raise CommandError("nothing deleted")
            storage_delete_orphans(report=report)
        self._emit(options, report.as_dict(), self._audit_text(report))
        if report.counts["missing"] or report.counts["mismatched"]:
            raise CommandError("storage does not match the database")

    @staticmethod
    def _audit_progress(options: dict[str, Any]) -> Any:
        last = [0.0]

        def report(audit: AuditReport) -> None:
            if time.monotonic() - last[0] < 5:
                return
            last[0] = time.monotonic()
            sys.stderr.write(
                f"migrate_storage --verify-only: {audit.listed} objects listed, "
                f"{audit.checked} tracks checked\n"
            )

        return report

    @staticmethod
    def _audit_text(report: AuditReport) -> str:
        attached = "".join(
            f" and {n} {name} file(s)" for name, n in report.attached_checked.items()
        )
        mode = "read and hashed" if report.deep else "from listings"
        text = (
            f"Checked {report.checked} track(s){attached} {mode} "
            f"({report.listed} objects listed in {report.seconds:.1f} s): "
            f"{report.counts['missing']} missing, {report.counts['mismatched']} "
            f"differ, {report.counts['orphans']} orphan(s)"
            + (f", {report.deleted_orphans} deleted" if report.deleted_orphans else "")
        )
        if report.unrecorded_etags:
            text += (
                f"; {report.unrecorded_etags} S3 object(s) have no recorded ETag "
                "(checked by size; --deep hashes them)"
            )
        details = [f"  missing: {m['backend']} {m['key']}" for m in report.missing]
        details += [f"  differs: {m['backend']} {m['key']}" for m in report.mismatched]
        details += [f"  orphan: {o['backend']} {o['key']}" for o in report.orphans]
        return "\n".join([text, *details])

    def _purge(self, options: dict[str, Any]) -> None:
        if options["older_than"] is None:
            raise CommandError("--purge-local needs --older-than DAYS")
        if options["older_than"] < 0:
            raise CommandError("--older-than must not be negative")
        result = storage_purge_local(
            older_than_days=options["older_than"],
            dry_run=options["dry_run"],
            deep=options["deep"],
        )
        verb = "Would purge" if options["dry_run"] else "Purged"
        lines = [
            f"{verb} {result['purged']} local copies ({megabytes(result['bytes'])}); "
            f"kept {result['kept']} whose S3 object did not verify."
        ]
        for name in sorted(
            {k.split("_")[0] for k in result} - {"purged", "bytes", "kept"}
        ):
            if f"{name}_purged" in result:
                lines.append(
                    f"{verb} the local files of {result[f'{name}_purged']} "
                    f"{name}(s): {result[f'{name}_files']} files "
                    f"({megabytes(result[f'{name}_bytes'])}); kept "
                    f"{result[f'{name}_kept']} whose S3 objects did not verify."
                )
        self._emit(options, result, "\n".join(lines))
