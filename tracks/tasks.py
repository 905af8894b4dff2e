"""Background tasks of tracks, run by the task workers (`manage.py db_worker`)."""

from __future__ import annotations

from typing import Any

from django_tasks import task

from tracks.migration import MoveOptions, storage_migrate


@task()
def tracks_move(
    *, track_ids: list[str], target: str, started_by: str = ""
) -> dict[str, Any]:
    """Move the given tracks to `target`, as `migrate_storage --track` would."""
    run = storage_migrate(
        options=MoveOptions(
            target=target,
            workers=4,
            batch_size=16,
            track_ids=track_ids,
            started_by=started_by or "admin",
        )
    )
    return {
        "run": run.pk,
        "status": run.status,
        "moved": run.moved,
        "failed": run.failed,
    }
