"""Resumable uploads benchmark: tus and S3 multipart beside one request and `aws s3 cp`.

Serves Veza the production way (gunicorn + veza.wsgi with
infra/gunicorn.conf.py, 2 sync workers, PostgreSQL) with one task worker
(`manage.py db_worker`, which processes completed uploads), and sends a
seeded WAV (1 GiB by default) four ways:

* one request, `POST /api/v1/tracks/` (today's upload), local backend;
* tus with tuspy in 64 MiB chunks, local backend, until the upload is `ready`;
* tus cut at 50 % (the first client stops, a second one resumes from the
  server's offset), until `ready`;
* S3 multipart straight to the bucket (`rclone serve s3`): parts of 64 MiB
  PUT to presigned URLs by 4 threads, completed, until `ready`.

For each: wall time, the gunicorn workers' peak RSS growth (VmRSS sampled
every 50 ms) and their CPU seconds (utime + stime from /proc) while the
client sends. Goals (issue 15): RSS growth < 64 MB for both transports; S3
direct server CPU < 1 s per GiB; tus time <= 1.25x one request (throughput
>= 0.8x); the cut costs < 5 % extra. `aws s3 cp` of the same file to the
same S3 server is printed beside S3 direct.

    .venv/bin/python bench/bench_resumable.py [--size-mb 1024] [--repeats 1]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import harness
import requests
from bench_upload import (
    RssSampler,
    ensure_wav,
    time_tool,
    tool_commands,
    upload,
    warm_up,
)
from tusclient import client as tus

MiB = 1024 * 1024
CHUNK = 64 * MiB
GOAL_RSS_MB = 64
GOAL_CPU_PER_GIB = 1.0
GOAL_TUS_RATIO = 0.8
GOAL_CUT_EXTRA = 0.05
READY_TIMEOUT = 600


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of processes so far (/proc/<pid>/stat)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / ticks


@dataclass
class Measured:
    seconds: float  # until the track is ready
    bytes_in_seconds: float  # until the server had every byte
    rss_growth_mb: float
    server_cpu_s: float


def measure(pids: list[int], send: Callable[[], float]) -> Measured:
    """`send` returns when the track is ready, with the perf_counter time at
    which the last byte was accepted."""
    cpu_before = cpu_seconds(pids)
    started = time.perf_counter()
    with RssSampler(pids) as sampler:
        bytes_in = send()
    return Measured(
        seconds=time.perf_counter() - started,
        bytes_in_seconds=bytes_in - started,
        rss_growth_mb=sampler.growth_mb(),
        server_cpu_s=cpu_seconds(pids) - cpu_before,
    )


def wait_ready(url: str, token: str, upload_id: str) -> dict[str, object]:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        body = requests.get(
            f"{url}/api/v1/uploads/{upload_id}",
            headers={"Authorization": f"Token {token}"},
            timeout=30,
        ).json()
        if body["status"] in ("ready", "failed"):
            if body["status"] != "ready":
                raise RuntimeError(f"upload failed: {body}")
            return dict(body)
        time.sleep(0.25)
    raise RuntimeError(f"upload {upload_id} not ready in {READY_TIMEOUT} s")


def tus_send(url: str, token: str, wav: Path, *, cut: bool) -> float:
    headers = {"Authorization": f"Token {token}"}
    endpoint = f"{url}/api/v1/uploads/tus/"
    first = tus.TusClient(endpoint, headers=headers).uploader(
        file_path=str(wav), chunk_size=CHUNK, metadata={"filename": wav.name}
    )
    if cut:
        first.upload(stop_at=wav.stat().st_size // 2)
        # Another client (a new process after the cut) resumes from the
        # server's offset.
        tus.TusClient(endpoint, headers=headers).uploader(
            file_path=str(wav), chunk_size=CHUNK, url=first.url
        ).upload()
    else:
        first.upload()
    bytes_in = time.perf_counter()
    wait_ready(url, token, str(first.url).rstrip("/").rsplit("/", 1)[1])
    return bytes_in


def s3_send(url: str, token: str, wav: Path) -> float:
    api = requests.Session()
    api.headers["Authorization"] = f"Token {token}"
    base = f"{url}/api/v1/uploads/s3/multipart"
    size = wav.stat().st_size
    opened = api.post(
        base,
        json={"filename": wav.name, "type": "audio/wav", "metadata": {"size": size}},
        timeout=30,
    )
    opened.raise_for_status()
    upload_id, key = opened.json()["uploadId"], opened.json()["key"]

    def send_part(number: int) -> dict[str, object]:
        signed = api.get(
            f"{base}/{upload_id}/{number}", params={"key": key}, timeout=30
        )
        signed.raise_for_status()
        with wav.open("rb") as f:
            f.seek((number - 1) * CHUNK)
            data = f.read(CHUNK)
        put = requests.put(signed.json()["url"], data=data, timeout=300)
        put.raise_for_status()
        return {"PartNumber": number, "ETag": put.headers["ETag"]}

    count = -(-size // CHUNK)
    with ThreadPoolExecutor(4) as pool:
        parts = list(pool.map(send_part, range(1, count + 1)))
    done = api.post(
        f"{base}/{upload_id}/complete",
        params={"key": key},
        json={"parts": parts},
        timeout=60,
    )
    done.raise_for_status()
    bytes_in = time.perf_counter()
    wait_ready(url, token, str(opened.json()["upload"]))
    return bytes_in


@contextlib.contextmanager
def task_worker(env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    log = (harness.OUT / "resumable-worker.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "db_worker",
            "--interval",
            "0.1",
            "--no-startup-delay",
        ],
        cwd=harness.ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield process
    finally:
        harness.stop_process(process)
        log.close()


def run(size_mb: int, repeats: int) -> dict[str, object]:
    wav = ensure_wav(size_mb)
    size = wav.stat().st_size
    print(f"File: {wav} ({size / 1e6:.1f} MB); {repeats} run(s) each, median reported")
    print(harness.load_note())
    results: dict[str, list[Measured]] = {}
    tools: dict[str, list[float]] = {}
    with contextlib.ExitStack() as stack:
        var = stack.enter_context(harness.temp_dir("veza-bench-resumable-"))
        db_url = stack.enter_context(harness.database("veza_bench_resumable", var))
        s3 = stack.enter_context(harness.s3_server("veza-bench"))
        common = {
            "VEZA_VAR_DIR": str(var / "var"),
            "VEZA_MEDIA_ROOT": str(var / "media"),
            "DATABASE_URL": db_url,
            "TRACK_MAX_UPLOAD_BYTES": str(size * 2),
            "TRACK_MAX_DURATION_SECONDS": str(24 * 3600),
            "HLS_PACKAGE_ON_UPLOAD": "false",
            # One user uploads every run: the per-user limits would stop it.
            "TRACK_QUOTA_BYTES": "0",
            "TRACK_DAILY_UPLOAD_BYTES": "0",
            "TRACK_DAILY_UPLOAD_TRACKS": "0",
            "UPLOAD_MAX_OPEN_SESSIONS": "100",
            "GUNICORN_TIMEOUT": "600",
        }
        token = harness.migrate_and_make_user(harness.base_env(**common))["token"]
        backends = {
            "local": harness.base_env(**common, TRACK_STORAGE_BACKEND="local"),
            "s3": harness.base_env(**common, **s3, TRACK_STORAGE_BACKEND="s3"),
        }
        ways: dict[str, tuple[str, Callable[[str], float]]] = {
            "one request": ("local", lambda url: upload_checked(url, token, wav)),
            "tus": ("local", lambda url: tus_send(url, token, wav, cut=False)),
            "tus, cut at 50 %": (
                "local",
                lambda url: tus_send(url, token, wav, cut=True),
            ),
            "S3 multipart direct": ("s3", lambda url: s3_send(url, token, wav)),
        }
        commands = {
            name: command
            for name, command in tool_commands(s3, wav).items()
            if name == "aws s3 cp"
        }
        for i in range(repeats):
            for name, (backend, send) in ways.items():
                env = backends[backend]
                with (
                    harness.gunicorn(
                        "veza.wsgi", env, name="resumable-gunicorn"
                    ) as server,
                    task_worker(env),
                ):
                    # Every worker imports and builds what it serves with.
                    warm_up(server.url, token, ensure_wav(1))
                    pids = server.worker_pids()
                    m = measure(pids, lambda: send(server.url))  # noqa: B023
                results.setdefault(name, []).append(m)
                print(
                    f"  run {i + 1} {name:>20}: {m.seconds:7.2f} s "
                    f"(bytes in {m.bytes_in_seconds:.2f} s), "
                    f"{size / 1e6 / m.seconds:6.1f} MB/s, "
                    f"RSS +{m.rss_growth_mb:.1f} MB, server CPU {m.server_cpu_s:.2f} s"
                )
            for name, command in commands.items():
                seconds = time_tool(command, s3)
                tools.setdefault(name, []).append(seconds)
                print(f"  run {i + 1} {name:>20}: {seconds:7.2f} s")
        if not commands:
            print(
                "SKIPPED aws s3 cp: not found (python3.11 -m venv bench/out/tools && "
                "bench/out/tools/bin/pip install awscli)"
            )
    print(harness.load_note())
    return report(size, results, tools)


def upload_checked(url: str, token: str, wav: Path) -> float:
    _, answer = upload(url, token, wav)
    if answer.get("size_bytes") != wav.stat().st_size:
        raise RuntimeError(f"stored size differs: {answer}")
    return time.perf_counter()  # one request: in and ready at once


def report(
    size: int, results: dict[str, list[Measured]], tools: dict[str, list[float]]
) -> dict[str, object]:
    med = harness.median
    gib = size / 1024**3
    seconds = {name: med([m.seconds for m in runs]) for name, runs in results.items()}
    rows = [
        [
            name,
            f"{med([m.bytes_in_seconds for m in runs]):.2f}",
            f"{seconds[name]:.2f}",
            f"{size / 1e6 / seconds[name]:.1f}",
            f"{max(m.rss_growth_mb for m in runs):.1f}",
            f"{med([m.server_cpu_s for m in runs]) / gib:.2f}",
        ]
        for name, runs in results.items()
    ]
    rows += [
        [
            f"{name} (same S3 server)",
            f"{med(s):.2f}",
            f"{med(s):.2f}",
            f"{size / 1e6 / med(s):.1f}",
            "-",
            "-",
        ]
        for name, s in tools.items()
    ]
    print()
    print(f"Upload of {size / 1e6:.1f} MB ({gib:.2f} GiB), until the track is ready")
    harness.print_table(
        [
            "way",
            "bytes in, s",
            "until ready, s",
            "MB/s (ready)",
            "server RSS growth MB (max)",
            "server CPU s per GiB",
        ],
        rows,
    )
    tus_ratio = seconds["one request"] / seconds["tus"]
    cut_extra = seconds["tus, cut at 50 %"] / seconds["tus"] - 1
    s3_cpu = med([m.server_cpu_s for m in results["S3 multipart direct"]]) / gib
    rss = max(
        m.rss_growth_mb
        for name in ("tus", "tus, cut at 50 %", "S3 multipart direct")
        for m in results[name]
    )
    verdicts = {
        "tus throughput / one request": (
            tus_ratio,
            tus_ratio >= GOAL_TUS_RATIO,
            f">= {GOAL_TUS_RATIO}x",
        ),
        "extra time of a cut at 50 %": (
            cut_extra,
            cut_extra < GOAL_CUT_EXTRA,
            f"< {GOAL_CUT_EXTRA:.0%}",
        ),
        "S3 direct server CPU s/GiB": (
            s3_cpu,
            s3_cpu < GOAL_CPU_PER_GIB,
            f"< {GOAL_CPU_PER_GIB}",
        ),
        "server RSS growth MB (both transports)": (
            rss,
            rss < GOAL_RSS_MB,
            f"< {GOAL_RSS_MB}",
        ),
    }
    s3_in = med([m.bytes_in_seconds for m in results["S3 multipart direct"]])
    s3_ready = seconds["S3 multipart direct"]
    for name, s in tools.items():
        print(
            f"Ratio S3 direct / {name}, throughput: bytes in "
            f"{med(s) / s3_in:.3f}x, until ready {med(s) / s3_ready:.3f}x"
        )
    for what, (value, met, goal) in verdicts.items():
        print(f"{what}: {value:.3f} (goal {goal}) {'OK' if met else 'MISSED'}")
    return {
        "size_bytes": size,
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
        "tools_seconds": {k: round(med(v), 2) for k, v in tools.items()},
        "goals": {
            k: {"value": round(v[0], 3), "met": v[1]} for k, v in verdicts.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    summary = run(args.size_mb, args.repeats)
    out = harness.OUT / "bench_resumable.json"
    out.write_text(json.dumps(summary, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
