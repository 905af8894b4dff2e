"""Stream-URL benchmark: `GET /api/v1/tracks/{id}/stream` under wrk.

The endpoint authenticates a DRF token, looks the track up in PostgreSQL and
signs a URL: an S3 presigned URL for a track on S3 (a real `rclone serve s3`),
an origin token URL for a local track. It is served the production way
(gunicorn + veza.wsgi, infra/gunicorn.conf.py, 2 workers) and compared with a
bare Django JSON view (bench/bare_django.py, no middleware, no database) on
the same gunicorn settings, under the same load (`wrk -t2 -c16 -d10s`), the
runs of the three targets interleaved. Goal: our req/s >= 0.5x the bare
view's. For comparison only, the same endpoint under daphne (veza.asgi, one
process) is measured too.

Before loading, each URL is fetched once and checked: 200, the expected
`source`, and the URL it returns serves the track's bytes.

    .venv/bin/python bench/bench_stream_url.py [--duration 10] [--connections 16]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import shutil
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import harness
from bench_upload import ensure_wav, upload

GOAL_RATIO = 0.5
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not match:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(match[1]) * UNITS[match[2]]


def parse_wrk(output: str) -> WrkResult:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output)[1])  # type: ignore[index]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", output, re.M)[1])  # type: ignore[index]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", output, re.M)[1])  # type: ignore[index]
    errors = 0
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", output):
        errors += int(m[1])
    if m := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    ):
        errors += sum(int(x) for x in m.groups())
    return WrkResult(rps, p50, p99, errors)


def wrk(
    url: str, token: str | None, *, threads: int, connections: int, duration: int
) -> WrkResult:
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration}s",
        "--latency",
        "--timeout",
        "5s",
    ]
    if token:
        cmd += ["-H", f"Authorization: Token {token}"]
    out = subprocess.run(
        [*cmd, url], capture_output=True, text=True, check=True, timeout=duration + 30
    ).stdout
    return parse_wrk(out)


def get_json(url: str, token: str) -> dict[str, object]:
    request = urllib.request.Request(url, headers={"Authorization": f"Token {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return dict(json.load(response))


def fetch_size(url: str) -> int:
    with urllib.request.urlopen(url, timeout=30) as response:
        return len(response.read())


def verify(url: str, token: str, source: str, size: int) -> None:
    """One request by hand: the endpoint answers and its URL serves the bytes."""
    answer = get_json(url, token)
    if answer.get("source") != source:
        raise RuntimeError(f"{url}: expected source {source!r}, got {answer}")
    got = fetch_size(str(answer["url"]))
    if got != size:
        raise RuntimeError(f"{answer['url']} served {got} bytes, expected {size}")


@dataclass
class Target:
    label: str
    url: str
    token: str | None


def measure(target: Target, args: argparse.Namespace) -> WrkResult:
    """A 2 s warm-up, then `repeats` runs; the run with the median req/s."""
    return median_run(measure_alternating([target], args)[target.label])


def measure_alternating(
    targets: list[Target], args: argparse.Namespace
) -> dict[str, list[WrkResult]]:
    """Like `measure`, the targets' runs interleaved (A, B, A, B, ...), so a
    drift of the machine during the run does not favour whichever goes first.
    Every run of every target, in the order they ran."""
    for target in targets:
        wrk(
            target.url,
            target.token,
            threads=args.threads,
            connections=args.connections,
            duration=2,
        )
    runs: dict[str, list[WrkResult]] = {t.label: [] for t in targets}
    for _ in range(args.repeats):
        for target in targets:
            runs[target.label].append(
                wrk(
                    target.url,
                    target.token,
                    threads=args.threads,
                    connections=args.connections,
                    duration=args.duration,
                )
            )
    for label, done in runs.items():
        print(f"  {label}: " + ", ".join(f"{r.rps:.0f}" for r in done) + " req/s")
    return runs


def median_run(runs: list[WrkResult]) -> WrkResult:
    return sorted(runs, key=lambda r: r.rps)[len(runs) // 2]


def upload_track(env: dict[str, str], token: str, wav: Path) -> str:
    with harness.gunicorn("veza.wsgi", env, name="stream-setup") as server:
        _, answer = upload(server.url, token, wav)
    return str(answer["id"])


def run(args: argparse.Namespace) -> dict[str, object]:
    if not shutil.which("wrk"):
        print("SKIPPED bench_stream_url: wrk is not installed (apt-get install -y wrk)")
        return {"skipped": "wrk missing"}
    wav = ensure_wav(1)
    size = wav.stat().st_size
    results: dict[str, WrkResult] = {}
    print(harness.load_note())
    with contextlib.ExitStack() as stack:
        var = stack.enter_context(harness.temp_dir("veza-bench-stream-"))
        db_url = stack.enter_context(harness.database("veza_bench_stream", var))
        s3 = stack.enter_context(harness.s3_server("veza-bench"))
        common = {
            "VEZA_VAR_DIR": str(var / "var"),
            "VEZA_MEDIA_ROOT": str(var / "media"),
            "DATABASE_URL": db_url,
            **s3,
        }
        token = harness.migrate_and_make_user(harness.base_env(**common))["token"]
        local_id = upload_track(
            harness.base_env(**common, TRACK_STORAGE_BACKEND="local"), token, wav
        )
        env = harness.base_env(
            **common,
            TRACK_STORAGE_BACKEND="s3",
            GUNICORN_WORKER_CLASS=args.worker_class,
            GUNICORN_THREADS="4" if args.worker_class == "gthread" else "1",
        )
        s3_id = upload_track(env, token, wav)
        print(f"Tracks: s3 {s3_id}, local {local_id} ({size} bytes each)")

        # Both servers up at once and their runs interleaved (bare, s3,
        # local, bare, ...): the machine is shared, and a drift in its load
        # must not favour the side measured first. An idle server costs
        # nothing.
        with (
            harness.gunicorn(
                "bare_django:application",
                env,
                name="stream-bare",
                chdir=harness.BENCH,
                ready_path="/hello",
            ) as bare,
            harness.gunicorn("veza.wsgi", env, name="stream-gunicorn") as veza,
        ):
            targets = [
                Target("bare Django JSON view, gunicorn", f"{bare.url}/hello", None)
            ]
            for track_id, source, label in (
                (s3_id, "s3", "s3 track"),
                (local_id, "origin", "local track"),
            ):
                url = f"{veza.url}/api/v1/tracks/{track_id}/stream"
                verify(url, token, source, size)
                targets.append(
                    Target(f"Veza stream URL, {label}, gunicorn", url, token)
                )
            runs = measure_alternating(targets, args)
            results.update({label: median_run(done) for label, done in runs.items()})
            # Each run against the bare run of the same round, which saw the
            # same moment of the machine's load.
            bare_runs = runs[targets[0].label]
            paired = {
                label: [r.rps / b.rps for r, b in zip(done, bare_runs, strict=True)]
                for label, done in runs.items()
                if label != targets[0].label
            }

        # Under ASGI each request runs in its own thread, so persistent
        # connections (CONN_MAX_AGE=60) pile up until PostgreSQL refuses
        # more ("too many clients"): daphne gets DATABASE_CONN_MAX_AGE=0.
        asgi_env = {**env, "DATABASE_CONN_MAX_AGE": "0"}
        with harness.daphne(
            "veza.asgi:application", asgi_env, name="stream-daphne"
        ) as asgi:
            url = f"{asgi.url}/api/v1/tracks/{s3_id}/stream"
            verify(url, token, "s3", size)
            target = Target(
                "Veza stream URL, s3 track, daphne (ASGI, comparison)", url, token
            )
            results[target.label] = measure(target, args)
    print(harness.load_note())
    return report(results, paired, args)


def report(
    results: dict[str, WrkResult],
    paired: dict[str, list[float]],
    args: argparse.Namespace,
) -> dict[str, object]:
    print()
    print(
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s --latency; "
        f"median of {args.repeats} runs; gunicorn: 2 {args.worker_class} workers"
    )
    bare = next(iter(results.values()))
    rows = [
        [
            label,
            f"{r.rps:.0f}",
            f"{r.p50_ms:.2f}",
            f"{r.p99_ms:.2f}",
            str(r.errors),
            f"{r.rps / bare.rps:.2f}x",
        ]
        for label, r in results.items()
    ]
    harness.print_table(
        ["target", "req/s", "p50 ms", "p99 ms", "errors", "vs bare"], rows
    )
    summary: dict[str, object] = {label: vars(r) for label, r in results.items()}
    for label, r in results.items():
        if "gunicorn" in label and label.startswith("Veza"):
            ratio = r.rps / bare.rps
            verdict = "OK" if ratio >= GOAL_RATIO else "MISSED"
            print(
                f"Ratio {label} / bare: {ratio:.2f}x (goal >= {GOAL_RATIO}x) {verdict}"
            )
            rounds = paired.get(label, [])
            print(
                "  by round (vs that round's bare run): "
                + ", ".join(f"{x:.2f}x" for x in rounds)
            )
    summary["paired_ratios"] = paired
    if any(r.errors for r in results.values()):
        print("WARNING: some requests failed (see the errors column)")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker-class", default="sync", choices=["sync", "gthread"])
    args = parser.parse_args()
    summary = run(args)
    (harness.OUT / "bench_stream_url.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
