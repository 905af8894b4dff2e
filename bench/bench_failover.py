"""Failover benchmark: what clients see while PostgreSQL restarts.

Starts a private PostgreSQL cluster (Debian's initdb and pg_ctl on a free
port; tests/postgres_server.py), migrates it and serves Veza on it the
production way (gunicorn, infra/gunicorn.conf.py, 2 sync workers). Clients
(4 threads, each request after the last) ask `GET /api/v1/tracks/` while
the cluster stops with a fast shutdown and starts again, down 2 s or for a
bare `pg_ctl restart`; each with connection health checks on (our default)
and off (Django's default). Two more runs restart the cluster with no load
on the API, then ask 20 times: connections left idle through the restart
fail their next request unless they are health-checked.

Then `manage.py migrate_storage --to s3` moves 5,000 small tracks to
`rclone serve s3`, once undisturbed and once through a 2 s outage, and the
ratio of their times is printed.

    .venv/bin/python bench/bench_failover.py [--down 2.0]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import harness
import requests

from tests.postgres_server import (
    PostgresServer,
    postgres_unavailable,
    start_postgres_server,
)

CLIENTS = 4
TRACKS = 5000


@dataclass
class Seen:
    started: float = field(default_factory=time.monotonic)
    answers: list[tuple[float, float, int, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, begun: float, status: int, code: str) -> None:
        with self.lock:
            self.answers.append((begun, time.monotonic(), status, code))


def ask(url: str, token: str, seen: Seen, stop: threading.Event) -> None:
    session = requests.Session()
    headers = {"Authorization": f"Token {token}"}
    while not stop.is_set():
        begun = time.monotonic()
        try:
            response = session.get(url, headers=headers, timeout=10)
        except requests.RequestException as exc:
            seen.add(begun, 0, type(exc).__name__)
            continue
        code = ""
        if response.status_code != 200 and response.content[:1] == b"{":
            code = response.json().get("error", {}).get("code", "")
        seen.add(begun, response.status_code, code)


def api_through_restart(
    cluster: PostgresServer, env: dict[str, str], token: str, *, down: float
) -> dict[str, object]:
    with harness.gunicorn("veza.wsgi", env, name="failover-gunicorn") as server:
        seen, stop = Seen(), threading.Event()
        clients = [
            threading.Thread(
                target=ask, args=(f"{server.url}/api/v1/tracks/", token, seen, stop)
            )
            for _ in range(CLIENTS)
        ]
        for client in clients:
            client.start()
        time.sleep(3.0)
        stopped, started = cluster.outage(down)
        time.sleep(5.0)
        stop.set()
        for client in clients:
            client.join(timeout=15)
    failed = [a for a in seen.answers if a[2] != 200]
    after_start = [a for a in failed if a[0] >= started]
    last_failure = max((a[1] for a in failed), default=stopped)
    kinds: dict[str, int] = {}
    for _, _, status, code in failed:
        kinds[f"{status} {code}".strip()] = kinds.get(f"{status} {code}".strip(), 0) + 1
    return {
        "requests": len(seen.answers),
        "failed": len(failed),
        "failed_by_kind": kinds,
        "errors_500": sum(1 for a in failed if a[2] == 500),
        "outage_ms": round((started - stopped) * 1000),
        "failing_ms": round((last_failure - stopped) * 1000) if failed else 0,
        "failed_after_start": len(after_start),
        "ok_again_after_start_ms": round(max(0.0, last_failure - started) * 1000),
    }


def api_idle_through_restart(
    cluster: PostgresServer, env: dict[str, str], token: str
) -> dict[str, object]:
    """No load during the restart: both workers hold a connection opened
    before it; then 20 requests, one after the other."""
    headers = {"Authorization": f"Token {token}"}
    with harness.gunicorn("veza.wsgi", env, name="failover-gunicorn") as server:
        url = f"{server.url}/api/v1/tracks/"
        session = requests.Session()
        for _ in range(20):
            session.get(url, headers=headers, timeout=10)
        cluster.stop("fast")
        cluster.start()
        statuses = [
            requests.get(url, headers=headers, timeout=10).status_code
            for _ in range(20)
        ]
    return {"requests": len(statuses), "failed": sum(s != 200 for s in statuses)}


MAKE_TRACKS = """
from pathlib import Path
from django.contrib.auth import get_user_model
from tests.tracks.migration_helpers import make_local_tracks
owner, _ = get_user_model().objects.get_or_create(username="mover")
make_local_tracks(owner, Path({root!r}), {count}, size=16 * 1024, seed={seed})
"""


def migration_time(
    cluster: PostgresServer, env: dict[str, str], media: Path, *, outage: float | None
) -> dict[str, object]:
    harness.manage(
        env, "shell", "-c", MAKE_TRACKS.format(root=str(media), count=TRACKS, seed=7)
    )
    command = [sys.executable, "manage.py", "migrate_storage", "--to", "s3"]
    args = ["--workers", "4", "--batch-size", "32", "--json"]
    begun = time.monotonic()
    run = subprocess.Popen(
        [*command, *args],
        cwd=harness.ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    if outage is not None:
        time.sleep(2.0)
        cluster.outage(outage)
    out, err = run.communicate(timeout=600)
    seconds = time.monotonic() - begun
    if run.returncode != 0:
        raise RuntimeError(f"migrate_storage failed: {err[-2000:]}")
    summary = json.loads(out)
    return {
        "seconds": round(seconds, 2),
        "moved": summary["moved"],
        "already_there": summary["already_there"],
        "selected": summary["selected"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--down", type=float, default=2.0)
    options = parser.parse_args()
    reason = postgres_unavailable()
    if reason:
        sys.exit(f"cannot run: {reason}")
    print(harness.load_note())
    results: dict[str, object] = {}
    cluster = start_postgres_server()
    try:
        with harness.temp_dir("veza-failover-") as work:
            env = harness.base_env(
                DATABASE_URL=cluster.url(), VEZA_VAR_DIR=str(work / "var")
            )
            token = harness.migrate_and_make_user(env)["token"]
            rows = []
            for checks in ("true", "false"):
                for down in (options.down, 0.0):
                    figures = api_through_restart(
                        cluster,
                        {**env, "DATABASE_CONN_HEALTH_CHECKS": checks},
                        token,
                        down=down,
                    )
                    results[f"api health_checks={checks} down={down}"] = figures
                    rows.append(
                        [
                            "on" if checks == "true" else "off (Django's default)",
                            f"{down:.1f} s" if down else "pg_ctl restart",
                            str(figures["requests"]),
                            str(figures["failed"]),
                            str(figures["errors_500"]),
                            str(figures["failing_ms"]),
                            str(figures["failed_after_start"]),
                            str(figures["ok_again_after_start_ms"]),
                        ]
                    )
            for checks in ("true", "false"):
                figures = api_idle_through_restart(
                    cluster, {**env, "DATABASE_CONN_HEALTH_CHECKS": checks}, token
                )
                results[f"api idle health_checks={checks}"] = figures
                rows.append(
                    [
                        "on" if checks == "true" else "off (Django's default)",
                        "pg_ctl restart, no load",
                        str(figures["requests"]),
                        str(figures["failed"]),
                        "0",
                        "-",
                        str(figures["failed"]),
                        "-",
                    ]
                )
            print("\nAPI through a PostgreSQL restart (gunicorn, 2 workers)")
            harness.print_table(
                [
                    "health checks",
                    "database down",
                    "requests",
                    "failed (503)",
                    "500s",
                    "failing for, ms",
                    "failed after start",
                    "200 again after start, ms",
                ],
                rows,
            )
            with harness.s3_server("veza-failover") as s3:
                media = work / "media"
                moved_env = {
                    **env,
                    **s3,
                    "VEZA_MEDIA_ROOT": str(media),
                    "TRACK_STORAGE_BACKEND": "local",
                }
                calm = migration_time(cluster, moved_env, media, outage=None)
                stormy = migration_time(cluster, moved_env, media, outage=options.down)
            results["migration"] = {"undisturbed": calm, "through_outage": stormy}
            print(f"\nmigrate_storage of {TRACKS} tracks of 16 KiB to S3")
            harness.print_table(
                ["run", "seconds (command, start-up included)", "selected", "moved"],
                [
                    [
                        "undisturbed",
                        str(calm["seconds"]),
                        str(calm["selected"]),
                        str(calm["moved"]),
                    ],
                    [
                        f"database down {options.down:.1f} s",
                        str(stormy["seconds"]),
                        str(stormy["selected"]),
                        str(stormy["moved"]),
                    ],
                ],
            )
            ratio = float(str(stormy["seconds"])) / float(str(calm["seconds"]))
            print(f"Ratio through outage / undisturbed: {ratio:.2f}x")
    finally:
        cluster.destroy()
    print(f"\nwrote {harness.write_results('bench_failover', results)}")


if __name__ == "__main__":
    main()
