"""Daphne in a subprocess on a free port, sharing the test database."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.processes import stop_process
from tests.s3server import free_port
from tests.tracks.migration_helpers import database_url

BASE_DIR = Path(__file__).resolve().parent.parent.parent


@dataclass
class Daphne:
    """An app server in a subprocess (daphne, or gunicorn)."""

    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def stop(self) -> None:
        stop_process(self.process)


def redis_reachable(url: str) -> bool:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or 6379), timeout=1
        ) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _environment(
    settings, workdir: Path, redis_url: str, extra: dict[str, str] | None
) -> dict[str, str]:
    """The environment of an app server on the test database."""
    environment = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "VEZA_", "AWS_", "TRACK_", "WEBRTC_", "CDN_"))
    }
    environment.pop("REDIS_URL", None)
    environment.update(
        {
            "DJANGO_SETTINGS_MODULE": "veza.settings.base",
            "DATABASE_URL": database_url(),
            # Sessions made by the test must verify in the server.
            "DJANGO_SECRET_KEY": settings.SECRET_KEY,
            "VEZA_VAR_DIR": str(workdir / "var"),
            "DJANGO_LOG_LEVEL": "WARNING",
            **({"REDIS_URL": redis_url} if redis_url else {}),
            **(extra or {}),
        }
    )
    return environment


def start_daphne(
    settings, workdir: Path, *, redis_url: str = "", extra: dict[str, str] | None = None
) -> Daphne:
    """daphne serving veza.asgi on the test database (and Redis when given)."""
    environment = _environment(settings, workdir, redis_url, extra)
    port = free_port()
    # How `make run` starts daphne (infra/run-dev.sh).
    command = [sys.executable, "-m", "veza.daphne_server", "-b", "127.0.0.1"]
    command += ["-p", str(port), "veza.asgi:application"]
    return _start(command, environment, port, workdir / f"daphne-{port}.log")


def start_gunicorn(
    settings, workdir: Path, *, workers: int = 2, extra: dict[str, str] | None = None
) -> Daphne:
    """gunicorn as production runs it (infra/gunicorn.conf.py, `workers`
    processes) serving veza.wsgi on the test database."""
    port = free_port()
    environment = _environment(
        settings,
        workdir,
        "",
        {"GUNICORN_BIND": f"127.0.0.1:{port}", "GUNICORN_WORKERS": str(workers)}
        | (extra or {}),
    )
    command = [sys.executable, "-m", "gunicorn", "-c", "infra/gunicorn.conf.py"]
    command.append("veza.wsgi")
    return _start(command, environment, port, workdir / f"gunicorn-{port}.log")


def _start(
    command: list[str], environment: dict[str, str], port: int, log: Path
) -> Daphne:
    name = Path(command[2]).name
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            cwd=BASE_DIR,
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited: {log.read_text()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return Daphne(port=port, process=process, log=log)
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{name} did not start in 30 s")
