"""Start a real Redis primary, a replica and three Sentinels on free ports."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.processes import stop_process
from tests.s3server import free_port

MASTER = "veza"
# Sentinels agree the primary is down after this long without an answer.
DOWN_AFTER_MS = 500


def redis_server_binary() -> str | None:
    return shutil.which("redis-server")


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _wait_for(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while not _ping(port):
        if process.poll() is not None:
            raise RuntimeError(f"redis on port {port} exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"redis on port {port} did not answer")
        time.sleep(0.05)


@dataclass
class SentinelGroup:
    root: Path
    primary_port: int
    replica_port: int
    sentinel_ports: list[int]
    processes: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def sentinels(self) -> str:
        """As REDIS_SENTINELS takes them."""
        return ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)

    def kill(self, port: int) -> None:
        """SIGKILL: a crash, no goodbye to the replica or the Sentinels."""
        process = self.processes.pop(port)
        process.kill()
        process.wait()

    def stop(self) -> None:
        for process in self.processes.values():
            stop_process(process)
        self.processes.clear()
        shutil.rmtree(self.root, ignore_errors=True)


def start_sentinel_group() -> SentinelGroup:
    binary = redis_server_binary()
    if binary is None:
        raise RuntimeError("redis-server is not installed")
    root = Path(tempfile.mkdtemp(prefix="veza-sentinel-"))
    group = SentinelGroup(
        root=root,
        primary_port=free_port(),
        replica_port=free_port(),
        sentinel_ports=[free_port() for _ in range(3)],
    )

    def start(port: int, *args: str) -> None:
        process = subprocess.Popen(
            [binary, *args],
            cwd=root,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        group.processes[port] = process
        _wait_for(port, process)

    try:
        common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        start(group.primary_port, "--port", str(group.primary_port), *common)
        start(
            group.replica_port,
            "--port",
            str(group.replica_port),
            "--replicaof",
            "127.0.0.1",
            str(group.primary_port),
            *common,
        )
        for port in group.sentinel_ports:
            # Sentinel rewrites its configuration file: one each, writable.
            conf = root / f"sentinel-{port}.conf"
            conf.write_text(
                f"port {port}\n"
                "bind 127.0.0.1\n"
                f"dir {root}\n"
                f"sentinel monitor {MASTER} 127.0.0.1 {group.primary_port} 2\n"
                f"sentinel down-after-milliseconds {MASTER} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {MASTER} 5000\n"
                f"sentinel parallel-syncs {MASTER} 1\n"
            )
            start(port, str(conf), "--sentinel")
        _wait_until_ready(group)
    except BaseException:
        group.stop()
        raise
    return group


def _wait_until_ready(group: SentinelGroup) -> None:
    """Until the replica is in sync and every Sentinel knows the replica and
    the two other Sentinels: only then can a failover happen."""
    from redis import Redis

    deadline = time.monotonic() + 30
    replica = Redis(port=group.replica_port)
    sentinels = [Redis(port=p) for p in group.sentinel_ports]
    while True:
        try:
            synced = replica.info("replication").get("master_link_status") == "up"
            known = all(
                len(s.sentinel_slaves(MASTER)) == 1
                and len(s.sentinel_sentinels(MASTER)) == 2
                for s in sentinels
            )
        except Exception:
            synced = known = False
        if synced and known:
            return
        if time.monotonic() > deadline:
            raise RuntimeError("the Sentinels did not find the replica and each other")
        time.sleep(0.1)
