"""The API and /readyz through a PostgreSQL restart, on a cluster of its own.

The tests start a private PostgreSQL cluster (Debian's initdb and pg_ctl on a
free port), migrate it, serve the app on it (daphne as `make run` does, and
gunicorn as production does) and keep clients asking the API while the
cluster stops (fast shutdown) and starts again two seconds later. During the
gap the API answers 503 `database_unavailable`, never a 500; right after the
start it answers 200 again. gunicorn keeps its connections across requests
(`DATABASE_CONN_MAX_AGE`): with health checks, one left idle through a
restart is replaced, not failed.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import psycopg
import pytest
import requests

from tests.postgres_server import (
    PostgresServer,
    postgres_unavailable,
    start_postgres_server,
)
from tests.processes import stop_process
from tests.s3server import free_port
from tests.tracks.migration_helpers import command_env
from tests.webrtc.servers import BASE_DIR, start_daphne

pytestmark = pytest.mark.skipif(
    postgres_unavailable() is not None, reason=postgres_unavailable() or ""
)

DOWN_SECONDS = 2.0


def app_env(cluster: PostgresServer, **extra: str) -> dict[str, str]:
    environment = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "VEZA_", "DATABASE_", "REDIS_"))
    }
    environment.update(
        DJANGO_SETTINGS_MODULE="veza.settings.base",
        DATABASE_URL=cluster.url(),
        **extra,
    )
    return environment


@contextlib.contextmanager
def gunicorn(cluster: PostgresServer, tmp_path, **extra: str) -> Iterator[str]:
    """gunicorn as production runs it (infra/gunicorn.conf.py), one worker."""
    port = free_port()
    environment = app_env(
        cluster,
        GUNICORN_BIND=f"127.0.0.1:{port}",
        GUNICORN_WORKERS="1",
        VEZA_VAR_DIR=str(tmp_path / "var"),
        **extra,
    )
    log = (tmp_path / f"gunicorn-{port}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "infra/gunicorn.conf.py", "veza.wsgi"],
        cwd=BASE_DIR,
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, "gunicorn exited"
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(process)
        log.close()


@contextlib.contextmanager
def app_server(
    kind: str, cluster: PostgresServer, settings, tmp_path, **extra: str
) -> Iterator[str]:
    if kind == "gunicorn":
        with gunicorn(cluster, tmp_path, **extra) as url:
            yield url
        return
    server = start_daphne(
        settings, tmp_path, extra={"DATABASE_URL": cluster.url(), **extra}
    )
    try:
        yield server.http
    finally:
        server.stop()


def manage(
    cluster: PostgresServer, *args: str, env_extra: dict[str, str] | None = None
) -> str:
    environment = app_env(cluster, **(env_extra or {}))
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope="module")
def cluster():
    server = start_postgres_server()
    try:
        manage(server, "migrate", "--noinput", "-v", "0")
        yield server
    finally:
        server.destroy()


@pytest.fixture(scope="module")
def token(cluster) -> str:
    return manage(
        cluster,
        "shell",
        "-c",
        "from django.contrib.auth import get_user_model;"
        "from rest_framework.authtoken.models import Token;"
        "u = get_user_model().objects.create_user('restart', password='x-pass-123');"
        "print(Token.objects.create(user=u).key)",
    ).split()[-1]


@dataclass
class Answers:
    """What clients got, by when: (seconds since start, status, error code)."""

    started: float = field(default_factory=time.monotonic)
    seen: list[tuple[float, int, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, status: int, code: str) -> None:
        with self.lock:
            self.seen.append((time.monotonic() - self.started, status, code))

    def statuses(self) -> Counter[tuple[int, str]]:
        return Counter((status, code) for _, status, code in self.seen)

    def last_failure_at(self) -> float:
        return max((t for t, status, _ in self.seen if status != 200), default=0.0)


def keep_asking(url: str, headers: dict[str, str], answers: Answers, stop) -> None:
    session = requests.Session()
    while not stop.is_set():
        try:
            response = session.get(url, headers=headers, timeout=10)
        except requests.RequestException as exc:
            answers.add(0, type(exc).__name__)
            continue
        code = ""
        if response.status_code != 200:
            body = response.json() if response.content[:1] == b"{" else {}
            code = (body.get("error") or {}).get("code", "") or body.get("status", "")
        answers.add(response.status_code, code)
        time.sleep(0.02)


@pytest.mark.parametrize("kind", ["daphne", "gunicorn"])
def test_the_api_answers_503_while_postgres_restarts_and_recovers(
    cluster, token, settings, tmp_path, kind
):
    with app_server(kind, cluster, settings, tmp_path) as base:
        api, ready = Answers(), Answers()
        stop = threading.Event()
        auth = {"Authorization": f"Token {token}"}
        clients = [
            threading.Thread(
                target=keep_asking,
                args=(f"{base}/api/v1/tracks/", auth, api, stop),
            )
            for _ in range(2)
        ] + [
            threading.Thread(
                target=keep_asking, args=(f"{base}/readyz", {}, ready, stop)
            )
        ]
        for client in clients:
            client.start()
        time.sleep(1.0)
        down_at, up_at = cluster.outage(DOWN_SECONDS)
        time.sleep(5.0)
        stop.set()
        for client in clients:
            client.join(timeout=15)

    statuses = api.statuses()
    # Before, during and after: 200 or the stable 503, never a 500.
    assert set(statuses) <= {(200, ""), (503, "database_unavailable")}, statuses
    assert statuses[(503, "database_unavailable")] > 0, "the gap was not seen"
    assert statuses[(200, "")] > 0
    # Back within seconds of the start, on the server's old connections.
    recovered = api.last_failure_at() - (up_at - api.started)
    assert recovered < 1.0, recovered
    assert api.seen[-1][1] == 200
    # /readyz follows: down during the gap, up after.
    ready_statuses = {status for _, status, _ in ready.seen}
    assert ready_statuses == {200, 503}, ready.statuses()
    assert ready.seen[-1][1] == 200
    # The API failed no longer than the database was down (plus the stop).
    gap = api.last_failure_at() - (down_at - api.started)
    assert gap < DOWN_SECONDS + 1.0, gap


@pytest.mark.parametrize("health_checks", [True, False])
def test_connections_idle_through_a_restart(cluster, token, tmp_path, health_checks):
    """A restart while nobody asks: with health checks (the default) the next
    request reconnects; without, it fails once, with the stable 503."""
    auth = {"Authorization": f"Token {token}"}
    flag = str(health_checks).lower()
    with gunicorn(cluster, tmp_path, DATABASE_CONN_HEALTH_CHECKS=flag) as base:
        url = f"{base}/api/v1/tracks/"
        # The worker holds a connection opened before the restart.
        assert requests.get(url, headers=auth, timeout=10).status_code == 200
        cluster.stop("fast")
        cluster.start()
        answers = [requests.get(url, headers=auth, timeout=10) for _ in range(5)]
    statuses = [a.status_code for a in answers]
    if health_checks:
        assert statuses == [200] * 5
    else:
        assert statuses == [503, 200, 200, 200, 200]
        assert answers[0].json()["error"]["code"] == "database_unavailable"


COUNT_ON = """
    SELECT count(*) FROM tracks_track WHERE storage_backend = %(backend)s
    AND owner_id = (SELECT id FROM auth_user WHERE username = %(owner)s)
"""
STORED_ON_S3 = """
    SELECT storage_key, size_bytes FROM tracks_track WHERE storage_backend = 's3'
    AND owner_id = (SELECT id FROM auth_user WHERE username = %(owner)s)
"""


def count_on(cluster: PostgresServer, backend: str, owner: str) -> int:
    """The owner's tracks on `backend` (each test moves its own owner's)."""
    with psycopg.connect(cluster.url(), connect_timeout=2) as db:
        row = db.execute(COUNT_ON, {"backend": backend, "owner": owner}).fetchone()
    assert row is not None
    return int(row[0])


def local_tracks(cluster: PostgresServer, settings, rows: int, seed: int) -> str:
    """`rows` tracks on local disk, made in the cluster's database; their
    owner's name."""
    manage(
        cluster,
        "shell",
        "-c",
        "from pathlib import Path;"
        "from django.contrib.auth import get_user_model;"
        "from tests.tracks.migration_helpers import make_local_tracks;"
        f"owner = get_user_model().objects.create_user('mover{seed}');"
        f"make_local_tracks(owner, Path({str(settings.MEDIA_ROOT)!r}), {rows},"
        f" size=16 * 1024, seed={seed})",
        env_extra={"VEZA_MEDIA_ROOT": str(settings.MEDIA_ROOT)},
    )
    return f"mover{seed}"


def migrate_storage(
    cluster: PostgresServer, settings, *args: str
) -> subprocess.Popen[str]:
    """`manage.py migrate_storage --to s3` on the cluster, as an operator runs it."""
    return subprocess.Popen(
        [sys.executable, "manage.py", "migrate_storage", "--to", "s3", *args],
        cwd=BASE_DIR,
        env={**command_env(settings), "DATABASE_URL": cluster.url()},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until_moving(
    cluster: PostgresServer, run: subprocess.Popen[str], owner: str
) -> None:
    """Until the run has moved 20 rows (it is under way, far from done)."""
    deadline = time.monotonic() + 60
    while count_on(cluster, "s3", owner) < 20:
        assert run.poll() is None, "the run finished before the restart"
        assert time.monotonic() < deadline
        time.sleep(0.05)


MIGRATE_ARGS = ("--workers", "2", "--batch-size", "8", "--lease-seconds", "4")


def test_a_storage_migration_rides_through_a_restart(
    cluster, s3_local, settings, tmp_path
):
    """migrate_storage waits for the database and finishes: every row on S3,
    verified, in one run; a second run finds nothing to do."""
    owner = local_tracks(cluster, settings, 400, seed=21)
    run = migrate_storage(cluster, settings, *MIGRATE_ARGS)
    wait_until_moving(cluster, run, owner)
    cluster.outage(DOWN_SECONDS)
    out, err = run.communicate(timeout=300)

    assert run.returncode == 0, err[-3000:]
    assert "Traceback" not in err
    assert "database unavailable" in err  # it saw the outage and waited
    assert count_on(cluster, "local", owner) == 0
    assert count_on(cluster, "s3", owner) == 400
    assert_objects_whole(cluster, s3_local, owner)
    again = migrate_storage(cluster, settings, *MIGRATE_ARGS, "--json")
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err[-3000:]
    assert '"selected": 0' in out


def test_a_migration_whose_database_stays_away_stops_clearly_and_resumes(
    cluster, s3_local, settings, tmp_path
):
    owner = local_tracks(cluster, settings, 400, seed=22)
    run = migrate_storage(cluster, settings, *MIGRATE_ARGS, "--wait-for-database", "2")
    wait_until_moving(cluster, run, owner)
    cluster.stop("fast")
    try:
        _, err = run.communicate(timeout=120)
    finally:
        cluster.start()
    # A one-line error with its cause and what to do, not a traceback.
    assert run.returncode == 1
    assert "Traceback" not in err
    assert "The database stayed unreachable" in err
    assert "run it again to finish" in err
    assert 0 < count_on(cluster, "local", owner) < 400
    # Nothing flipped unverified: every row on S3 has its whole object.
    assert_objects_whole(cluster, s3_local, owner)
    # Run again: it waits out the stopped run's leases and finishes.
    again = migrate_storage(cluster, settings, *MIGRATE_ARGS)
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err[-3000:]
    assert count_on(cluster, "local", owner) == 0
    assert_objects_whole(cluster, s3_local, owner)


def assert_objects_whole(cluster: PostgresServer, s3, owner: str) -> None:
    with psycopg.connect(cluster.url()) as db:
        rows = db.execute(STORED_ON_S3, {"owner": owner}).fetchall()
    for key, size in rows:
        head = s3.head_object(Bucket=s3.bucket, Key=key)
        assert head["ContentLength"] == size
