"""Redis failover benchmark: the shared cache and the channel layer while the
Redis primary dies, under Sentinel and with a single REDIS_URL.

Starts a Redis primary, a replica and three Sentinels (Debian's
redis-server; `down-after-milliseconds` 500; tests/redis_sentinel.py). Each
scenario runs in a fresh process configured only by environment variables,
as the app is (`REDIS_SENTINELS` + `REDIS_SENTINEL_MASTER`, or `REDIS_URL`
naming the primary), so the settings' own wiring is what is measured: one
thread writes and reads the cache every 20 ms, and a channel layer publishes
a frame every 20 ms to a group a second layer instance listens to. One
second in, the primary is killed (SIGKILL). Under Sentinel the replica is
promoted by the Sentinels; with a single URL nothing takes over, and the
primary is started again after 5 s, as a supervisor would.

Printed: how long the cache and the relay failed after the kill, and the
frames sent but never received.

    .venv/bin/python bench/bench_redis_failover.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import threading
import time

import harness

from tests.redis_sentinel import (
    MASTER,
    redis_server_binary,
    start_sentinel_group,
)

RUN_SECONDS = 12.0
KILL_AT = 1.0
RESTART_AFTER = 5.0  # single URL: a supervisor starts the primary again


def measure(kill_pid: int, restart: list[str] | None) -> dict[str, object]:
    """In a process configured by env: the cache and relay timelines."""
    import django

    django.setup()
    from channels.layers import channel_layers
    from django.core.cache import caches

    started = time.monotonic()
    cache_failures: list[float] = []
    relay_failures: list[float] = []
    stop = threading.Event()

    def use_cache() -> None:
        cache = caches.create_connection("default")
        n = 0
        while not stop.is_set():
            n += 1
            try:
                cache.set("bench:n", n, 60)
                if cache.get("bench:n") != n:
                    raise RuntimeError("lost")
            except Exception:
                cache_failures.append(time.monotonic() - started)
            time.sleep(0.02)

    async def relay() -> tuple[dict[int, float], set[int]]:
        # Two instances built from the settings: two processes, in effect.
        sender = channel_layers.make_backend("default")
        listener = channel_layers.make_backend("default")
        channel = await listener.new_channel()
        await listener.group_add("call", channel)
        received: set[int] = set()

        async def listen() -> None:
            while True:
                try:
                    received.add((await listener.receive(channel))["n"])
                except asyncio.CancelledError:
                    raise
                except Exception:
                    await asyncio.sleep(0.05)

        listening = asyncio.ensure_future(listen())
        sent: dict[int, float] = {}
        killed = False
        i = 0
        restarted: subprocess.Popen[bytes] | None = None
        while time.monotonic() - started < RUN_SECONDS:
            now = time.monotonic() - started
            if not killed and now >= KILL_AT:
                os.kill(kill_pid, 9)
                killed = True
            if restart and restarted is None and now >= KILL_AT + RESTART_AFTER:
                restarted = subprocess.Popen(
                    restart, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
            i += 1
            try:
                await asyncio.wait_for(
                    sender.group_send("call", {"type": "frame", "n": i}), timeout=1
                )
                sent[i] = time.monotonic() - started
            except Exception:
                relay_failures.append(time.monotonic() - started)
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.5)
        listening.cancel()
        await asyncio.gather(listening, return_exceptions=True)
        if restarted is not None:
            restarted.terminate()
            restarted.wait()
        return sent, received

    writer = threading.Thread(target=use_cache)
    writer.start()
    try:
        sent, received = asyncio.run(relay())
    finally:
        stop.set()
        writer.join(timeout=10)
    lost = [n for n in sent if n not in received]
    return {
        "cache_failed_ms": round((max(cache_failures) - KILL_AT) * 1000)
        if cache_failures
        else 0,
        "cache_failures": len(cache_failures),
        "relay_failed_ms": round((max(relay_failures) - KILL_AT) * 1000)
        if relay_failures
        else 0,
        "frames_sent": len(sent),
        "frames_lost": len(lost),
        "frames_lost_after_recovery": len(
            [
                n
                for n in lost
                if sent[n] > (max(relay_failures) if relay_failures else KILL_AT) + 1
            ]
        ),
    }


def scenario(kind: str) -> dict[str, object]:
    group = start_sentinel_group()
    try:
        env = harness.base_env()
        for key in ("REDIS_URL", "REDIS_SENTINELS", "REDIS_SENTINEL_MASTER"):
            env.pop(key, None)
        primary = group.processes[group.primary_port]
        restart = None
        if kind == "sentinel":
            env["REDIS_SENTINELS"] = group.sentinels
            env["REDIS_SENTINEL_MASTER"] = MASTER
        else:
            env["REDIS_URL"] = f"redis://127.0.0.1:{group.primary_port}/0"
            binary = redis_server_binary() or "redis-server"
            restart = [binary, "--port", str(group.primary_port), "--bind", "127.0.0.1"]
            restart += ["--save", "", "--appendonly", "no"]
        out = subprocess.run(
            [sys.executable, __file__, "--measure", str(primary.pid)]
            + (["--restart", json.dumps(restart)] if restart else []),
            env=env,
            cwd=harness.ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if out.returncode:
            raise RuntimeError(out.stderr[-3000:])
        return dict(json.loads(out.stdout.strip().splitlines()[-1]))
    finally:
        group.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--measure", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--restart", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.measure:
        restart = json.loads(options.restart) if options.restart else None
        print(json.dumps(measure(options.measure, restart)))
        return
    if redis_server_binary() is None:
        sys.exit("cannot run: redis-server is not installed")
    print(harness.load_note())
    results = {kind: scenario(kind) for kind in ("sentinel", "single URL")}
    rows = [
        [
            kind,
            str(r["cache_failed_ms"]),
            str(r["relay_failed_ms"]),
            str(r["frames_sent"]),
            str(r["frames_lost"]),
            str(r["frames_lost_after_recovery"]),
        ]
        for kind, r in results.items()
    ]
    print("\nRedis primary killed (SIGKILL) 1 s in; 12 s in all")
    harness.print_table(
        [
            "setup",
            "cache failing for, ms",
            "relay failing for, ms",
            "frames sent",
            "frames lost",
            "lost after recovery",
        ],
        rows,
    )
    print(f"\nwrote {harness.write_results('bench_redis_failover', results)}")


if __name__ == "__main__":
    main()
