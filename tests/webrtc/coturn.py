"""A real coturn (Debian `turnserver`) on free loopback ports, for tests."""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.processes import stop_process
from tests.s3server import free_port

TURNSERVER = shutil.which("turnserver")
UCLIENT = shutil.which("turnutils_uclient")


@dataclass
class Coturn:
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"turn:127.0.0.1:{self.port}?transport=udp"

    def stop(self) -> None:
        stop_process(self.process)


def start_coturn(workdir: Path, secrets: list[str], realm: str = "veza.test") -> Coturn:
    """coturn with TURN REST auth; loopback peers allowed (test only)."""
    assert TURNSERVER is not None
    port = free_port()
    low = 20000 + (port % 200) * 200
    log = workdir / "turnserver.log"
    args = [
        TURNSERVER,
        "-n",
        "--no-cli",
        "--no-tls",
        "--no-dtls",
        "--listening-ip=127.0.0.1",
        "--relay-ip=127.0.0.1",
        f"--listening-port={port}",
        f"--min-port={low}",
        f"--max-port={low + 199}",
        "--use-auth-secret",
        *[f"--static-auth-secret={secret}" for secret in secrets],
        f"--realm={realm}",
        "--fingerprint",
        "--no-multicast-peers",
        # coturn < 4.9 blocks loopback peers unless allowed outright; the
        # allowed-peer-ip line is what production needs for its own relay IP.
        "--allow-loopback-peers",
        "--allowed-peer-ip=127.0.0.1",
        f"--pidfile={workdir / 'turnserver.pid'}",
        f"--db={workdir / 'turndb'}",
        f"--log-file={log}",
        "--simple-log",
    ]
    process = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=workdir
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"turnserver exited: {log.read_text()[-2000:]}")
        if log.exists() and "Total General servers" in log.read_text():
            time.sleep(0.2)
            return Coturn(port=port, process=process, log=log)
        time.sleep(0.05)
    process.kill()
    raise RuntimeError("turnserver did not start in 15 s")


def allocate(turn: Coturn, username: str, credential: str) -> tuple[bool, str]:
    """Allocate a relay and bounce data through it (two clients, -y)."""
    assert UCLIENT is not None
    result = subprocess.run(
        [
            UCLIENT,
            "-y",
            "-n",
            "2",
            "-m",
            "1",
            "-l",
            "64",
            "-u",
            username,
            "-w",
            credential,
            "-p",
            str(turn.port),
            "127.0.0.1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = result.stdout + result.stderr
    ok = result.returncode == 0 and "Total lost packets 0" in output
    return ok, output
