"""Background tasks of streaming, run by the task workers (`manage.py db_worker`)."""

from __future__ import annotations

from typing import Any

from django_tasks import task

from streaming.services import hls_package_build, hls_package_retire


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


@task()
def hls_package_retire_task(*, package_id: int) -> dict[str, Any]:
    """Delete a superseded package once its grace period is over (enqueued
    with `run_after` when it is superseded; see `hls_package_retire`)."""
    retired = hls_package_retire(package_id=package_id)
    return {"package": package_id, "retired": bool(retired.packages)}
