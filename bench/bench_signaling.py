"""Signaling benchmark: one daphne, N websockets in N/2 calls, relayed candidates.

Measures the connect rate, the relay latency (p50/p99) at a fixed aggregate
message rate, lost messages and the server's memory per connection, with the
in-memory channel layer and with Redis, beside a bare `websockets` relay that
does the same exchange (no auth, no database, no channel layer). Writes
bench/out/signaling-figures.md.

    .venv/bin/python bench/bench_signaling.py [--connections 1000] [--rate 1000]
        [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import (
    OUT,
    ROOT,
    VENV_BIN,
    base_env,
    free_port,
    load_note,
    manage,
    stop_process,
    temp_dir,
    wait_for_http,
    write_results,
)
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Origin

REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
SECRET = secrets.token_urlsafe(40)

MAKE_USERS = """
import json
from django.contrib.auth import get_user_model
from django.contrib.sessions.backends.db import SessionStore
User = get_user_model()
count = {count}
User.objects.bulk_create(
    [User(username=f"b{{i}}", password="!") for i in range(count)], batch_size=500
)
out = []
for user in User.objects.filter(username__startswith="b").order_by("id"):
    s = SessionStore()
    s["_auth_user_id"] = str(user.pk)
    s["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
    s["_auth_user_hash"] = user.get_session_auth_hash()
    s.create()
    out.append([user.pk, s.session_key])
print(json.dumps(out))
"""

BARE_RELAY = """
import asyncio, sys
from websockets.asyncio.server import serve
peers = {}
async def handler(ws):
    me = ws.request.path.rsplit("/", 1)[-1]
    peers[me] = ws
    try:
        async for message in ws:
            # "<to>|<json>": forwarded as is, like the relay of candidates.
            to, _, body = message.partition("|")
            peer = peers.get(to)
            if peer is not None:
                await peer.send(body)
    finally:
        peers.pop(me, None)
async def main():
    async with serve(handler, "127.0.0.1", int(sys.argv[1]), max_queue=None):
        await asyncio.Future()
asyncio.run(main())
"""


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


async def open_all(
    urls_and_headers: list[tuple[str, dict[str, str]]], origin: str
) -> tuple[list[ClientConnection], float]:
    limit = asyncio.Semaphore(50)

    async def one(url: str, headers: dict[str, str]) -> ClientConnection:
        async with limit:
            return await connect(
                url,
                origin=Origin(origin),
                additional_headers=headers,
                max_queue=None,
                open_timeout=60,
            )

    started = time.perf_counter()
    sockets = await asyncio.gather(*(one(u, h) for u, h in urls_and_headers))
    return sockets, time.perf_counter() - started


async def exchange(
    pairs: list[tuple[Any, Any, Any, Any]], rate: float, seconds: float
) -> dict[str, float]:
    """Send `rate` messages/s in total for `seconds`, alternating direction.

    pairs: (socket a, socket b, frame maker a→b, frame maker b→a); a frame
    maker takes (sequence, send time) and returns the text to send.
    """
    latencies: list[float] = []
    received = 0

    async def reader(ws: ClientConnection) -> None:
        nonlocal received
        with contextlib.suppress(Exception):
            async for message in ws:
                frame = json.loads(message)
                candidate = frame.get("candidate") or {}
                sent = candidate.get("t") if isinstance(candidate, dict) else None
                if sent is not None:
                    latencies.append(time.perf_counter() - sent)
                    received += 1

    readers = [asyncio.create_task(reader(ws)) for a, b, _, _ in pairs for ws in (a, b)]
    total = int(rate * seconds)
    interval = 1 / rate
    start = time.perf_counter()
    for n in range(total):
        a, b, a_to_b, b_to_a = pairs[n % len(pairs)]
        target = start + n * interval
        delay = target - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if (n // len(pairs)) % 2 == 0:
            await a.send(a_to_b(n, time.perf_counter()))
        else:
            await b.send(b_to_a(n, time.perf_counter()))
    elapsed = time.perf_counter() - start
    deadline = time.perf_counter() + 10
    while received < total and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)
    for task in readers:
        task.cancel()
    return {
        "sent": total,
        "received": received,
        "lost": total - received,
        "achieved_rate": total / elapsed,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
    }


CANDIDATE = "candidate:1 1 udp 2122260223 192.0.2.1 54400 typ host"


def candidate_frame(call_id: str) -> Callable[[int, float], str]:
    def make(n: int, t: float) -> str:
        return json.dumps(
            {
                "type": "call.candidate",
                "call_id": call_id,
                "candidate": {
                    "candidate": CANDIDATE,
                    "sdpMid": "0",
                    "sdpMLineIndex": 0,
                    "n": n,
                    "t": t,
                },
            }
        )

    return make


async def veza_run(
    pid: int, port: int, users: list[list[Any]], rate: float, seconds: float
) -> dict[str, float]:
    origin = f"http://127.0.0.1:{port}"
    url = f"ws://127.0.0.1:{port}/ws/calls/"
    before = rss_kib(pid)
    sockets, connect_s = await open_all(
        [(url, {"Cookie": f"sessionid={key}"}) for _, key in users], origin
    )
    await asyncio.sleep(1)
    per_connection = max(0, rss_kib(pid) - before) / len(sockets)
    pairs = []
    offer = {"type": "offer", "sdp": "v=0\r\ns=bench\r\n"}
    answer = {"type": "answer", "sdp": "v=0\r\ns=bench\r\n"}

    async def setup(i: int) -> tuple[Any, Any, Any, Any]:
        caller, callee = sockets[2 * i], sockets[2 * i + 1]
        await caller.send(
            json.dumps({"type": "call.invite", "to": users[2 * i + 1][0], "sdp": offer})
        )
        call_id = json.loads(await caller.recv())["call_id"]
        await callee.recv()  # call.incoming
        await callee.send(
            json.dumps({"type": "call.answer", "call_id": call_id, "sdp": answer})
        )
        await caller.recv()  # call.answered
        return (caller, callee, candidate_frame(call_id), candidate_frame(call_id))

    started = time.perf_counter()
    limit = asyncio.Semaphore(20)

    async def limited(i: int) -> tuple[Any, Any, Any, Any]:
        async with limit:
            return await setup(i)

    pairs = await asyncio.gather(*(limited(i) for i in range(len(users) // 2)))
    setup_s = time.perf_counter() - started
    result = await exchange(pairs, rate, seconds)
    for ws in sockets:
        await ws.close()
    return {
        "connect_s": connect_s,
        "calls_setup_s": setup_s,
        "rss_per_conn_kib": per_connection,
        **result,
    }


async def bare_run(
    pid: int, port: int, count: int, rate: float, seconds: float
) -> dict[str, float]:
    origin = f"http://127.0.0.1:{port}"
    before = rss_kib(pid)
    sockets, connect_s = await open_all(
        [(f"ws://127.0.0.1:{port}/ws/{i}", {}) for i in range(count)], origin
    )
    await asyncio.sleep(1)
    per_connection = max(0, rss_kib(pid) - before) / len(sockets)

    def maker(to: int) -> Callable[[int, float], str]:
        inner = candidate_frame("bare")
        return lambda n, t: f"{to}|{inner(n, t)}"

    pairs = [
        (sockets[2 * i], sockets[2 * i + 1], maker(2 * i + 1), maker(2 * i))
        for i in range(count // 2)
    ]
    result = await exchange(pairs, rate, seconds)
    for ws in sockets:
        await ws.close()
    return {
        "connect_s": connect_s,
        "calls_setup_s": 0.0,
        "rss_per_conn_kib": per_connection,
        **result,
    }


def start_daphne(env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                str(VENV_BIN / "daphne"),
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                "veza.asgi:application",
            ],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    wait_for_http(port, "/healthz", proc)
    return proc, port


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--only",
        choices=("memory", "redis", "bare"),
        action="append",
        help="run only these servers (repeatable); the report needs all three",
    )
    args = parser.parse_args()
    only = set(args.only or ("memory", "redis", "bare"))
    count = args.connections - args.connections % 2
    OUT.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, float]] = {}
    with temp_dir("veza-bench-signaling-") as tmp:
        env = base_env(
            DJANGO_SECRET_KEY=SECRET,
            VEZA_VAR_DIR=str(tmp),
            DATABASE_URL=f"sqlite:///{tmp / 'bench.sqlite3'}",
            WEBRTC_RING_TIMEOUT="600",
        )
        env.pop("REDIS_URL", None)
        manage(env, "migrate", "--noinput")
        out = manage(env, "shell", "-c", MAKE_USERS.format(count=count))
        users = json.loads(out.strip().splitlines()[-1])
        layers = {
            name: extra
            for key, name, extra in (
                ("memory", "in-memory layer", {}),
                ("redis", "redis layer", {"REDIS_URL": REDIS_URL}),
            )
            if key in only
        }
        for name, extra in layers.items():
            proc, port = start_daphne({**env, **extra}, OUT / "signaling-daphne.log")
            try:
                results[name] = asyncio.run(
                    veza_run(proc.pid, port, users, args.rate, args.seconds)
                )
            finally:
                stop_process(proc)
            manage(
                env,
                "shell",
                "-c",
                "from webrtc.models import Call; Call.objects.all().delete()",
            )
        if "bare" not in only:
            print(json.dumps(results, indent=2))
            return
        port = free_port()
        bare = subprocess.Popen([sys.executable, "-c", BARE_RELAY, str(port)])
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                with contextlib.suppress(OSError):
                    import socket

                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                time.sleep(0.1)
            results["bare websockets relay"] = asyncio.run(
                bare_run(bare.pid, port, count, args.rate, args.seconds)
            )
        finally:
            stop_process(bare)
    report(results, count, args)


def report(
    results: dict[str, dict[str, float]], count: int, args: argparse.Namespace
) -> None:
    memory_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30)
    lines = [
        "# Signaling benchmark",
        "",
        f"`.venv/bin/python bench/bench_signaling.py --connections {count} "
        f"--rate {args.rate:g} --seconds {args.seconds:g}` on "
        f"{platform.node()} ({os.cpu_count()} CPUs, "
        f"{memory_gib} GiB),"
        f" {time.strftime('%Y-%m-%d')}.{load_note()}",
        "",
        f"One server process, {count} websockets in {count // 2} calls, "
        f"call.candidate frames relayed at {args.rate:g}/s aggregate for "
        f"{args.seconds:g} s (client and server on the same machine).",
        "",
        "| server | connect rate (conn/s) | call setup (s) | achieved msg/s | "
        "p50 relay (ms) | p99 relay (ms) | lost | RSS per connection (KiB) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {count / r['connect_s']:.0f} | {r['calls_setup_s']:.1f} | "
            f"{r['achieved_rate']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
            f"{r['lost']:.0f} / {r['sent']:.0f} | {r['rss_per_conn_kib']:.0f} |"
        )
    bare = results["bare websockets relay"]
    lines.append("")
    for name in ("in-memory layer", "redis layer"):
        r = results[name]
        p99 = r["p99_ms"] / max(bare["p99_ms"], 1e-6)
        p50 = r["p50_ms"] / max(bare["p50_ms"], 1e-6)
        connects = bare["connect_s"] / r["connect_s"]
        memory = r["rss_per_conn_kib"] / max(bare["rss_per_conn_kib"], 1e-6)
        lines.append(
            f"- {name} vs bare relay: p99 x{p99:.1f}, p50 x{p50:.1f}, connect "
            f"rate x{connects:.2f}, memory per connection x{memory:.1f}"
        )
    redis = results["redis layer"]
    goal = redis["p99_ms"] < 25 and redis["lost"] == 0
    lines.append(
        f"- Goal (p99 < 25 ms at {args.rate:g} msg/s with Redis, nothing lost): "
        f"{'met' if goal else 'NOT met'} (p99 {redis['p99_ms']:.2f} ms, "
        f"lost {redis['lost']:.0f})."
    )
    text = "\n".join(lines) + "\n"
    (OUT / "signaling-figures.md").write_text(text)
    write_results("bench_signaling", results)
    print(text)


if __name__ == "__main__":
    main()
