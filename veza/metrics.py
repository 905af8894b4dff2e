"""Every Prometheus metric of the project, each defined once, here."""

from __future__ import annotations

from typing import TypeVar

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.metrics import MetricWrapperBase

M = TypeVar("M", bound=MetricWrapperBase)


def _metric(kind: type[M], name: str, documentation: str, labels: list[str]) -> M:
    # Reloading this module (autoreload, tests) must not register twice, so an
    # existing collector of the same name is returned instead.
    existing = REGISTRY._names_to_collectors.get(name)
    if existing is not None:
        if not isinstance(existing, kind):
            raise TypeError(f"metric {name} already registered as another type")
        return existing
    return kind(name, documentation, labels)


CACHE_HITS = _metric(
    Counter,
    "veza_cache_hits_total",
    "Cache hits, by the subsystem that looked the value up.",
    ["subsystem"],
)
CACHE_MISSES = _metric(
    Counter,
    "veza_cache_misses_total",
    "Cache misses, by the subsystem that looked the value up.",
    ["subsystem"],
)
STORAGE_OPERATIONS = _metric(
    Counter,
    "veza_storage_operations_total",
    "Track storage operations, by backend, operation and outcome.",
    ["backend", "operation", "outcome"],
)
UPLOAD_BYTES = _metric(
    Counter,
    "veza_upload_bytes_total",
    "Bytes of track uploads stored, by backend.",
    ["backend"],
)
UPLOAD_SECONDS = _metric(
    Histogram,
    "veza_upload_seconds",
    "Time to probe and store one upload, by backend.",
    ["backend"],
)
PLAYBACK_URLS = _metric(
    Counter,
    "veza_playback_urls_total",
    "Playback URLs issued, by kind (stream, download) and source.",
    ["kind", "source"],
)
