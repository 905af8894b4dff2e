"""Background tasks of tracks, run by the task workers (`manage.py db_worker`)."""

from __future__ import annotations

from typing import Any

from django_tasks import task

from tracks.errors import MigrationFailed
from tracks.migration.reporting import failures_text
from tracks.migration.runner import MoveOptions, storage_migrate
from tracks.models import MigrationRunStatus


@task()
def tracks_move(
    *,
    target: str,
    track_ids: list[str] | None = None,
    workers: int = 4,
    started_by: str = "",
) -> dict[str, Any]:
    """A storage migration runner: the given tracks (or every one) to
    `target`, as `migrate_storage --to` would; several share the work."""
    run = storage_migrate(
        options=MoveOptions(
            target=target,
            workers=workers,
            batch_size=16 if track_ids else 256,
            track_ids=track_ids or [],
            started_by=started_by or "admin",
        )
    )
    summary = {
        "run": run.pk,
        "status": run.status,
        "moved": run.moved,
        "failed": run.failed,
    }
    # A run that left rows behind is a failed task, as the command exits
    # non-zero: the task list must not call it SUCCESSFUL.
    if run.status != MigrationRunStatus.SUCCEEDED:
        raise MigrationFailed(
            f"Run {run.pk} to {target} {run.status}: {run.failed + run.skipped} "
            f"track(s) did not move ({failures_text(run) or 'interrupted'}).",
            details=summary,
        )
    return summary


@task()
def upload_session_process_task(*, session_id: str) -> dict[str, Any]:
    """Process a complete resumable upload into a track (off the request)."""
    from tracks.upload_sessions import upload_session_process

    session = upload_session_process(session_id=session_id)
    return {"upload": session_id, "status": session.status, "error": session.error_code}
