"""Start a private PostgreSQL cluster (Debian's binaries) on a free port."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.s3server import free_port


def postgres_bin() -> Path | None:
    """The directory of initdb and pg_ctl (the newest installed version)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


def _as_postgres() -> list[str]:
    # initdb and postgres refuse to run as root: run them as `postgres`.
    if os.geteuid() != 0:
        return []
    if shutil.which("runuser") is None:
        raise RuntimeError("running as root needs runuser to start PostgreSQL")
    return ["runuser", "-u", "postgres", "--"]


def postgres_unavailable() -> str | None:
    """Why a private cluster cannot start here, or None."""
    if postgres_bin() is None:
        return (
            "PostgreSQL server binaries are not installed (apt-get install postgresql)"
        )
    if os.geteuid() == 0:
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            return "no postgres user to run the cluster as"
    return None


@dataclass
class PostgresServer:
    port: int
    root: Path
    bin: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "veza") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            [*_as_postgres(), str(self.bin / "pg_ctl"), "-D", str(self.data), *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 "
            f"-k {self.root} -c fsync=off -c full_page_writes=off"
        )
        self._ctl("-w", "-l", str(self.root / "log"), "-o", options, "start")

    def stop(self, mode: str = "fast") -> None:
        """`fast` ends every session (a planned restart); `immediate` is a crash."""
        self._ctl("-w", "-m", mode, "stop")

    def outage(self, seconds: float) -> tuple[float, float]:
        """Stop (fast), stay down `seconds`, start again; the monotonic times
        it went down and came back."""
        down_at = time.monotonic()
        self.stop("fast")
        time.sleep(seconds)
        self.start()
        return down_at, time.monotonic()

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # stopped already
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def start_postgres_server() -> PostgresServer:
    """A new cluster with a `veza` database; trust auth on 127.0.0.1."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL server binaries are not installed")
    root = Path(tempfile.mkdtemp(prefix="veza-pg-"))
    root.chmod(0o777)  # the postgres user writes its data and socket here
    server = PostgresServer(port=free_port(), root=root, bin=bin_dir)
    subprocess.run(
        [
            *_as_postgres(),
            str(bin_dir / "initdb"),
            "-D",
            str(server.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=120,
    )
    server.start()
    subprocess.run(
        [
            str(bin_dir / "createdb"),
            "-h",
            "127.0.0.1",
            "-p",
            str(server.port),
            "-U",
            "postgres",
            "veza",
        ],
        check=True,
        timeout=30,
    )
    return server
