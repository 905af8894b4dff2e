"""Liveness and readiness endpoints with per-dependency detail."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache

logger = logging.getLogger(__name__)


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _channel_layer() -> None:
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer configured")

    async def round_trip() -> None:
        channel = await layer.new_channel("readyz.")
        await layer.send(channel, {"type": "readyz.ping"})
        await asyncio.wait_for(layer.receive(channel), timeout=2)

    async_to_sync(round_trip)()


# What /readyz checks; apps add their dependencies from AppConfig.ready()
# (mediastore adds "storage"), since veza imports no app.
CHECKS: dict[str, Callable[[], None]] = {
    "database": _database,
    "channel_layer": _channel_layer,
}


def readiness_check_register(name: str, check: Callable[[], None]) -> None:
    """Add a dependency to /readyz: `check` raises when it is down."""
    CHECKS[name] = check


@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """200 when every dependency answers; 503 naming the ones that do not."""
    # Why a dependency is down can name paths, hosts and buckets: staff see
    # it here, everyone else only which one; the log has it always.
    detailed = request.user.is_authenticated and request.user.is_staff
    results: dict[str, dict[str, object]] = {}
    for name, check in CHECKS.items():
        started = time.monotonic()
        try:
            check()
        except Exception as exc:
            logger.warning("readyz: %s is down: %s: %s", name, type(exc).__name__, exc)
            results[name] = {"ok": False}
            if detailed:
                results[name]["error"] = f"{type(exc).__name__}: {exc}"
        else:
            results[name] = {"ok": True}
        results[name]["ms"] = round((time.monotonic() - started) * 1000, 1)
    ready = all(r["ok"] for r in results.values())
    if ready:
        return JsonResponse({"status": "ready", "checks": results})
    return JsonResponse(
        {
            "error": {
                "code": "not_ready",
                "message": "A dependency is down.",
                "details": results,
            }
        },
        status=503,
    )
