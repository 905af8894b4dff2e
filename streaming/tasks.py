"""Background tasks of streaming, run by the task workers (`manage.py db_worker`)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone
from django_tasks import task

from mediastore.errors import StorageUnavailable
from streaming.services import (
    hls_package_build,
    hls_package_retire,
    hls_package_retire_due_at,
    hls_packages_retire_due,
)


@task()
def hls_package_task(*, package_id: int, force: bool = False) -> dict[str, Any]:
    """Package and publish one HLS package (see `hls_package_build`)."""
    package = hls_package_build(package_id=package_id, force=force)
    if package is None:
        return {"package": package_id, "status": "gone"}
    return {
        "package": package_id,
        "status": package.status,
        "error_code": package.error_code,
    }


# A retirement the store refused is tried again this much later.
RETIRE_RETRY_SECONDS = 900
# What one retire task sweeps besides its own package: left by earlier
# failures or a worker killed mid-task. Bounded, so a backlog of due
# packages is shared out between the tasks rather than each walking it all.
RETIRE_SWEEP_LIMIT = 100


@task()
def hls_package_retire_task(*, package_id: int) -> dict[str, Any]:
    """Delete a superseded package once its grace period is over (enqueued
    with `run_after` when it is superseded; see `hls_package_retire`).

    Not due yet (the grace was raised since): enqueued again for then. The
    store unavailable: again in RETIRE_RETRY_SECONDS. Then up to
    RETIRE_SWEEP_LIMIT others that are due go too.
    """
    try:
        retired = hls_package_retire(package_id=package_id)
    except StorageUnavailable:
        later = timezone.now() + timedelta(seconds=RETIRE_RETRY_SECONDS)
        hls_package_retire_later(package_ids=[package_id], when=later)
        return {"package": package_id, "retired": False, "retry": True}
    if not retired.packages:
        due = hls_package_retire_due_at(package_id=package_id)
        if due is not None and due > timezone.now():
            hls_package_retire_later(package_ids=[package_id], when=due)
    swept = hls_packages_retire_due(limit=RETIRE_SWEEP_LIMIT)
    return {
        "package": package_id,
        "retired": bool(retired.packages),
        "swept": swept.packages,
    }


def hls_package_retire_later(*, package_ids: list[int], when: datetime) -> None:
    """Enqueue the retirement of each package for `when`. A backend that
    cannot defer (the tests' immediate one) leaves them to the sweep
    (`package_hls`, `hls_packages_retire_due`)."""
    if not hls_package_retire_task.get_backend().supports_defer:
        return
    deferred = hls_package_retire_task.using(run_after=when)
    for package_id in package_ids:
        deferred.enqueue(package_id=package_id)
