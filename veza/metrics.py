"""Every Prometheus metric of the project, each defined once, here."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector

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


HTTP_REQUESTS = _metric(
    Counter,
    "veza_http_requests_total",
    "HTTP requests answered, by route name, method and status code.",
    ["view", "method", "status"],
)
HTTP_REQUEST_SECONDS = _metric(
    Histogram,
    "veza_http_request_seconds",
    "Time to answer an HTTP request inside Django, by route name.",
    ["view"],
)
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
CDN_SIGNING_FAILURES = _metric(
    Counter,
    "veza_cdn_signing_failures_total",
    "CDN URL signing failures, by provider and what followed (fallback, refused).",
    ["provider", "outcome"],
)
STORAGE_MIGRATION_ROWS = _metric(
    Counter,
    "veza_storage_migration_rows_total",
    "Rows handled by storage migration runs in this process, by target and outcome.",
    ["target", "outcome"],
)
STORAGE_MIGRATION_BYTES = _metric(
    Counter,
    "veza_storage_migration_bytes_total",
    "Bytes copied by storage migration runs in this process, by target.",
    ["target"],
)

WEBRTC_CALLS = _metric(
    Counter,
    "veza_webrtc_calls_total",
    "Calls ended, by outcome (the end reason: hangup, rejected, busy, ...).",
    ["outcome"],
)
WEBRTC_CONNECTIONS = _metric(
    Gauge,
    "veza_webrtc_connections",
    "Signaling websockets open in this process.",
    [],
)
WEBRTC_SIGNALING_MESSAGES = _metric(
    Counter,
    "veza_webrtc_signaling_messages_total",
    "Signaling messages received, by type (or invalid) and result (ok, error).",
    ["type", "result"],
)
HLS_PACKAGES = _metric(
    Counter,
    "veza_hls_packages_total",
    "HLS packaging jobs finished, by result (ready, or the failure code).",
    ["result"],
)
HLS_PACKAGES_RETIRED = _metric(
    Counter,
    "veza_hls_packages_retired_total",
    "Superseded HLS packages deleted after their grace period, files and row.",
    [],
)
HLS_PACKAGE_SECONDS = _metric(
    Histogram,
    "veza_hls_package_seconds",
    "Wall time of one HLS packaging job, by phase (encode, store).",
    ["phase"],
)
HLS_REQUESTS = _metric(
    Counter,
    "veza_hls_origin_requests_total",
    "HLS files requested from the origin, by kind (playlist, segment) and status.",
    ["kind", "status"],
)
WEBRTC_ANSWER_SECONDS = _metric(
    Histogram,
    "veza_webrtc_answer_seconds",
    "Time from call.invite to call.answer.",
    [],
)


@dataclass(frozen=True)
class StorageFigures:
    """What the storage collector exports, supplied by the app that owns it."""

    # backend -> (rows, bytes)
    stored: dict[str, tuple[int, int]]
    # (run id, target, rows done, bytes per second) of every running run
    runs: list[tuple[str, str, int, float]]


def storage_figures_register(source: Callable[[], StorageFigures]) -> None:
    """Set where the storage collector reads its figures (tracks does, from
    its AppConfig.ready(): veza imports no app). Kept on the registered
    collector, which outlives a reload of this module."""
    collector = REGISTRY._names_to_collectors["veza_tracks_stored"]
    collector.source = source  # type: ignore[attr-defined]


class StorageCollector(Collector):
    """Storage totals and migration runs, read at scrape time.

    Runs happen in other processes (the command, task workers), so their
    progress is exported from the rows they record, not from counters here;
    totals come from the storage tallies, not from counting rows.
    """

    source: Callable[[], StorageFigures] | None = None

    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Describing without querying keeps registration free of database I/O.
        yield from self._families()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        rows, size, active, moved, rate = self._families()
        if self.source is not None:
            figures = self.source()
            for backend, (count, total) in figures.stored.items():
                rows.add_metric([backend], count)
                size.add_metric([backend], total)
            active.add_metric([], len(figures.runs))
            for run, target, done, bytes_per_second in figures.runs:
                moved.add_metric([run, target], done)
                rate.add_metric([run, target], bytes_per_second)
        yield from (rows, size, active, moved, rate)

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, ...]:
        return (
            GaugeMetricFamily(
                "veza_tracks_stored", "Tracks per storage backend.", labels=["backend"]
            ),
            GaugeMetricFamily(
                "veza_tracks_stored_bytes",
                "Bytes of tracks per storage backend.",
                labels=["backend"],
            ),
            GaugeMetricFamily(
                "veza_storage_migration_runs_active",
                "Storage migration runs in progress.",
            ),
            GaugeMetricFamily(
                "veza_storage_migration_run_rows_done",
                "Rows done by a running migration.",
                labels=["run", "target"],
            ),
            GaugeMetricFamily(
                "veza_storage_migration_run_bytes_per_second",
                "Throughput of a running migration.",
                labels=["run", "target"],
            ),
        )


if "veza_tracks_stored" not in REGISTRY._names_to_collectors:
    REGISTRY.register(StorageCollector())
