"""Shared plumbing of the benchmarks: ports, servers, a throwaway database.

Everything started here is stopped by the caller's `ExitStack`, so a failing
benchmark leaves no server, database or temporary directory behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
OUT = BENCH / "out"
VENV_BIN = Path(sys.executable).parent
# Experiments (e.g. a config whose hooks patch the app) may point elsewhere.
GUNICORN_CONF = Path(
    os.environ.get("BENCH_GUNICORN_CONF", ROOT / "infra" / "gunicorn.conf.py")
)
PG = {"host": "127.0.0.1", "port": "5432", "user": "postgres"}
# The rclone S3 server lives in the test helpers; the benchmarks reuse it.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_http(
    port: int, path: str, proc: subprocess.Popen[bytes], timeout: float = 60
) -> None:
    """Wait until the server answers `path` (any status), or raise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {proc.args!r}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
                if sock.recv(12).startswith(b"HTTP/"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server on port {port} did not answer within {timeout}s")


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def base_env(**extra: str) -> dict[str, str]:
    """The environment of a benchmarked Veza process: development, no DEBUG."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "DJANGO_", "VEZA_"))
        # Measured as deployed: Python caches the project's bytecode, so its
        # start-up does not compile every module again (some shells set this).
        and k != "PYTHONDONTWRITEBYTECODE"
    }
    env.update(
        VEZA_ENV="development",
        DJANGO_DEBUG="false",
        DJANGO_SETTINGS_MODULE="veza.settings.base",
        DJANGO_LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


@contextlib.contextmanager
def temp_dir(prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def postgres_database(prefix: str) -> Iterator[str]:
    """A fresh PostgreSQL database, dropped on exit; yields its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    args = ["-h", PG["host"], "-p", PG["port"], "-U", PG["user"]]
    subprocess.run(["createdb", *args, name], check=True, timeout=30)
    try:
        yield f"postgres://{PG['user']}@{PG['host']}:{PG['port']}/{name}"
    finally:
        subprocess.run(
            ["dropdb", *args, "--if-exists", "--force", name], check=False, timeout=30
        )


def postgres_available() -> bool:
    if not shutil.which("createdb"):
        return False
    try:
        with socket.create_connection((PG["host"], int(PG["port"])), timeout=1):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def database(prefix: str, var_dir: Path) -> Iterator[str]:
    """PostgreSQL (the production database) when it answers, else SQLite."""
    if postgres_available():
        with postgres_database(prefix) as url:
            yield url
    else:
        print("  PostgreSQL not reachable: using SQLite")
        yield f"sqlite:///{var_dir / 'bench.sqlite3'}"


def manage(
    env: dict[str, str], *args: str, timeout: float = 300, project: Path = ROOT
) -> str:
    """`manage.py ARGS` of `project` (this checkout, or another one)."""
    result = subprocess.run(
        [sys.executable, str(project / "manage.py"), *args],
        env=env,
        cwd=project,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode:
        raise RuntimeError(
            f"manage.py {' '.join(args[:2])} failed:\n{result.stderr[-3000:]}"
        )
    return result.stdout


SETUP_USER = """
import json
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
user, _ = get_user_model().objects.get_or_create(username="bench")
token, _ = Token.objects.get_or_create(user=user)
print(json.dumps({"user_id": user.pk, "token": token.key}))
"""


def migrate_and_make_user(
    env: dict[str, str], *, project: Path = ROOT
) -> dict[str, str]:
    """Migrate the database; create the user `bench` and its DRF token."""
    manage(env, "migrate", "--noinput", project=project)
    out = manage(env, "shell", "-c", SETUP_USER, project=project)
    return dict(json.loads(out.strip().splitlines()[-1]))


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def worker_pids(self) -> list[int]:
        """The master's children (gunicorn workers), or the process itself."""
        try:
            children = Path(
                f"/proc/{self.process.pid}/task/{self.process.pid}/children"
            ).read_text()
        except OSError:
            return []
        pids = [int(p) for p in children.split()]
        return pids or [self.process.pid]


@contextlib.contextmanager
def gunicorn(
    app: str,
    env: dict[str, str],
    *,
    name: str,
    workers: int = 2,
    chdir: Path | None = None,
    ready_path: str = "/healthz",
    log: Path | None = None,
    project: Path = ROOT,
) -> Iterator[Server]:
    """gunicorn with infra/gunicorn.conf.py on a free port; `project` is the
    checkout it runs (its config and code), this one by default."""
    port = free_port()
    env = {
        **env,
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": str(workers),
    }
    cmd = [
        str(VENV_BIN / "gunicorn"),
        "-c",
        str(GUNICORN_CONF if project == ROOT else project / "infra/gunicorn.conf.py"),
        "--chdir",
        str(chdir or project),
        app,
    ]
    with _server(cmd, env, name, port, ready_path, log, cwd=project) as server:
        # Wait until every worker has booted, so none starts mid-measurement.
        deadline = time.monotonic() + 30
        while len(server.worker_pids()) < workers and time.monotonic() < deadline:
            time.sleep(0.1)
        yield server


@contextlib.contextmanager
def daphne(
    app: str,
    env: dict[str, str],
    *,
    name: str,
    ready_path: str = "/healthz",
    log: Path | None = None,
) -> Iterator[Server]:
    port = free_port()
    cmd = [str(VENV_BIN / "daphne"), "-b", "127.0.0.1", "-p", str(port), app]
    with _server(cmd, env, name, port, ready_path, log) as server:
        yield server


@contextlib.contextmanager
def _server(
    cmd: list[str],
    env: dict[str, str],
    name: str,
    port: int,
    ready_path: str,
    log: Path | None,
    cwd: Path = ROOT,
) -> Iterator[Server]:
    OUT.mkdir(parents=True, exist_ok=True)
    log = log or OUT / f"{name}.log"
    with log.open("wb") as log_file:
        proc = subprocess.Popen(
            cmd, env=env, cwd=cwd, stdout=log_file, stderr=subprocess.STDOUT
        )
        try:
            wait_for_http(port, ready_path, proc)
            yield Server(name, port, proc)
        finally:
            stop_process(proc)


@contextlib.contextmanager
def s3_server(bucket: str) -> Iterator[dict[str, str]]:
    """`rclone serve s3` with one bucket; yields the AWS_* settings to reach it."""
    from tests.s3server import start_s3_server

    server = start_s3_server()
    try:
        import boto3

        boto3.client(
            "s3",
            endpoint_url=server.endpoint,
            region_name="us-east-1",
            aws_access_key_id=server.access_key,
            aws_secret_access_key=server.secret_key,
        ).create_bucket(Bucket=bucket)
        yield {
            "AWS_S3_ENABLED": "true",
            "AWS_STORAGE_BUCKET_NAME": bucket,
            "AWS_ACCESS_KEY_ID": server.access_key,
            "AWS_SECRET_ACCESS_KEY": server.secret_key,
            "AWS_S3_ENDPOINT_URL": server.endpoint,
            "AWS_S3_REGION_NAME": "us-east-1",
        }
    finally:
        server.stop()


def write_results(name: str, results: object) -> Path:
    """bench/out/<name>.json, the raw figures a run printed."""
    OUT.mkdir(parents=True, exist_ok=True)
    out = OUT / f"{name}.json"
    out.write_text(json.dumps(results, indent=2))
    return out


def load_note() -> str:
    """The load average: the machine may be shared with other work."""
    one, five, _ = os.getloadavg()
    cpus = os.cpu_count()
    return f"  (load average {one:.2f} over 1 min, {five:.2f} over 5 min; {cpus} CPUs)"


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    print(line)
    print("-" * len(line))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
