"""Storage migration benchmark: `migrate_storage --to s3` beside rclone, s5cmd, aws.

One `rclone serve s3` (tests/s3server.py) on loopback, one fresh PostgreSQL
database per dataset (migrated, dropped at the end), seeded random
(incompressible) files written to a temporary VEZA_MEDIA_ROOT outside the
repository at `tracks/<id>/<sha256>.wav`, and Track rows bulk-created for them.
For each dataset, at the tools' defaults and at matched concurrency N:

* ours: `manage.py migrate_storage --to s3 --json [--workers N]`, timed as a
  whole process (Django start, claims, MD5 + SHA-256 in one pass, PUT with
  Content-MD5 and the SHA-256 as metadata, HEAD verification, row flips);
  the rows are reset to `local` (untimed) before each run;
* `bench/boto3_copy.py` (`--workers N`, 8 by default): the same hashing, PUT
  and HEAD on the same boto3 configuration, with no Django and no database,
  i.e. the ceiling of the client the issue mandates;
* `rclone copy` (`--transfers N --checkers N`), `s5cmd cp` (`--numworkers N`)
  and `aws s3 cp --recursive` (`max_concurrent_requests` via AWS_CONFIG_FILE)
  of the same directory.

Every run writes to a fresh bucket; the object count and bytes are checked on
the server's disk afterwards, then the bucket is deleted. Also the no-op
re-run: 10,000 tiny rows migrated once, then a second `migrate_storage`,
beside a second `rclone copy` (and `s5cmd cp -n`) of the same 10,000 files.
MB = 10**6 bytes. Goals: >= 1.0x rclone on both datasets, >= 0.9x s5cmd on
4 MiB files, no-op re-run < 2 s.

    .venv/bin/python bench/bench_migrate.py [--concurrency 8,16] [--no-aws]
        [--datasets large,small,noop] [--scale 0.02]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import harness
import numpy as np

from tests.s3server import S3Server, start_s3_server

SEED = 20_240_601
MiB = 1024 * 1024
DATASETS = {
    # name: (files, bytes per file)
    "large": (500, 4 * MiB),
    "small": (5_000, 64 * 1024),
}
NOOP_FILES = 10_000
NOOP_SIZE = 1024
GOAL_RCLONE = 1.0
GOAL_S5CMD_LARGE = 0.9
GOAL_NOOP_SECONDS = 2.0
RUN_TIMEOUT = 300  # seconds per timed command
KEYS = {"access_key": "veza-bench", "secret_key": "veza-bench-secret"}

CREATE_ROWS = """
import json, os, uuid
from django.contrib.auth import get_user_model
from tracks.models import Track
owner, _ = get_user_model().objects.get_or_create(username="bench")
manifest = json.load(open(os.environ["BENCH_MANIFEST"]))
rows = [
    Track(
        id=uuid.UUID(m["id"]), owner=owner, title=f"t{i}", original_filename="t.wav",
        mime_type="audio/wav", size_bytes=m["size"], sha256=m["sha256"],
        duration_seconds=1.0, storage_backend="local", storage_key=m["key"],
    )
    for i, m in enumerate(manifest)
]
Track.objects.bulk_create(rows, batch_size=1000)
print(Track.objects.filter(storage_backend="local").count())
"""

RESET_ROWS = """
from tracks.models import Track
print(Track.objects.update(
    storage_backend="local", storage_verified_at=None, migration_state="",
    migration_target="", migration_runner="", migration_lease_until=None,
    migration_error="",
))
"""


# --- data ---------------------------------------------------------------------


def generate(
    media_root: Path, count: int, size: int, seed: int
) -> list[dict[str, Any]]:
    """Seeded random files at their deterministic names; returns the manifest."""
    rng = np.random.default_rng(seed)
    manifest = []
    for _ in range(count):
        track_id = uuid.UUID(bytes=rng.bytes(16), version=4)
        data = rng.bytes(size)
        sha = hashlib.sha256(data).hexdigest()
        key = f"tracks/{track_id}/{sha}.wav"
        path = media_root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        manifest.append({"id": str(track_id), "sha256": sha, "size": size, "key": key})
    return manifest


# --- measuring ----------------------------------------------------------------


@dataclass
class Result:
    dataset: str
    tool: str
    config: str  # "default" or the matched N
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
    cmd: list[str], env: dict[str, str], server_pid: int, cwd: Path = harness.ROOT
) -> tuple[float, float, float, str]:
    """Run a command; (wall seconds, client CPU, server CPU, stdout) or raise."""
    cpu0, server0 = children_cpu(), proc_cpu(server_pid)
    started = time.perf_counter()
    result = subprocess.run(
        cmd,
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    seconds = time.perf_counter() - started
    cpu, server = children_cpu() - cpu0, proc_cpu(server_pid) - server0
    if result.returncode:
        raise RuntimeError(
            f"{Path(cmd[0]).name} exited {result.returncode}:\n"
            f"{result.stdout[-1500:]}\n{result.stderr[-1500:]}"
        )
    return seconds, cpu, server, result.stdout


def find_tool(name: str) -> str | None:
    for directory in (harness.VENV_BIN, harness.OUT / "tools" / "bin"):
        if (directory / name).exists():
            return str(directory / name)
    return shutil.which(name)


class Bench:
    """The S3 server, buckets and the commands of every side."""

    def __init__(self, server: S3Server, scratch: Path, use_aws: bool) -> None:
        import boto3

        self.server = server
        self.endpoint = server.endpoint
        self.root = server.root
        self.pid = server.process.pid
        self.scratch = scratch
        self.s3 = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=KEYS["access_key"],
            aws_secret_access_key=KEYS["secret_key"],
        )
        self.buckets = 0
        self.rclone = find_tool("rclone")
        self.s5cmd = find_tool("s5cmd")
        self.aws = find_tool("aws") if use_aws else None
        # The mandated client's ceiling: ours without Django and the database.
        self.boto3 = str(Path(__file__).with_name("boto3_copy.py"))

    def bucket(self, tool: str) -> str:
        self.buckets += 1
        name = f"b{self.buckets:03d}-{tool}"
        self.s3.create_bucket(Bucket=name)
        return name

    def check_and_drop(self, bucket: str, files: int, size: int) -> str:
        """Count objects and bytes on the server's disk, then delete the bucket."""
        found = total = 0
        for path in (self.root / bucket / "tracks").rglob("*.wav"):
            found += 1
            total += path.stat().st_size
        shutil.rmtree(self.root / bucket, ignore_errors=True)
        if found != files or total != size:
            raise RuntimeError(
                f"{bucket}: {found} objects, {total} bytes; expected {files}, {size}"
            )
        return f"{found} objects OK"

    def tool_env(self, aws_concurrency: int | None = None) -> dict[str, str]:
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_"))
        }
        config = "/dev/null"
        if aws_concurrency is not None:
            path = self.scratch / f"aws-config-{aws_concurrency}"
            path.write_text(
                "[default]\nregion = us-east-1\n"
                f"s3 =\n  max_concurrent_requests = {aws_concurrency}\n"
            )
            config = str(path)
        env.update(
            AWS_ACCESS_KEY_ID=KEYS["access_key"],
            AWS_SECRET_ACCESS_KEY=KEYS["secret_key"],
            AWS_REGION="us-east-1",
            AWS_DEFAULT_REGION="us-east-1",
            AWS_CONFIG_FILE=config,
            AWS_SHARED_CREDENTIALS_FILE="/dev/null",
            RCLONE_CONFIG_BENCH_TYPE="s3",
            RCLONE_CONFIG_BENCH_PROVIDER="Other",
            RCLONE_CONFIG_BENCH_ENDPOINT=self.endpoint,
            RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=KEYS["access_key"],
            RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=KEYS["secret_key"],
            RCLONE_CONFIG_BENCH_REGION="us-east-1",
        )
        return env

    def tool_command(
        self, tool: str, source: Path, bucket: str, n: int | None, rerun: bool = False
    ) -> list[str]:
        dest = f"s3://{bucket}/tracks/"
        if tool == "boto3":
            return [
                sys.executable,
                self.boto3,
                str(source),
                bucket,
                "--endpoint",
                self.endpoint,
                *([] if n is None else ["--workers", str(n)]),
            ]
        binary = {"rclone": self.rclone, "s5cmd": self.s5cmd, "aws": self.aws}[tool]
        if binary is None:
            raise RuntimeError(f"{tool} is not installed")
        if tool == "rclone":
            flags = [] if n is None else ["--transfers", str(n), "--checkers", str(n)]
            return [
                binary,
                "--config",
                "/dev/null",
                "copy",
                str(source),
                f"bench:{bucket}/tracks",
                *flags,
            ]
        if tool == "s5cmd":
            flags = [] if n is None else ["--numworkers", str(n)]
            cp = ["cp", "-n"] if rerun else ["cp"]
            return [
                binary,
                "--endpoint-url",
                self.endpoint,
                *flags,
                *cp,
                f"{source}/*",
                dest,
            ]
        return [
            binary,
            "--endpoint-url",
            self.endpoint,
            "s3",
            "cp",
            "--recursive",
            "--only-show-errors",
            str(source),
            dest,
        ]

    def run_tool(
        self, dataset: str, tool: str, source: Path, n: int | None, size: int
    ) -> Result:
        files = sum(1 for _ in source.rglob("*.wav"))
        bucket = self.bucket(tool)
        env = self.tool_env(n if tool == "aws" else None)
        cmd = self.tool_command(tool, source, bucket, n)
        seconds, cpu, server, _ = timed(cmd, env, self.pid)
        note = self.check_and_drop(bucket, files, files * size)
        return Result(
            dataset, tool, "default" if n is None else str(n), seconds, files,
            files * size, cpu, server, note,
        )  # fmt: skip


def veza_env(common: dict[str, str], bucket: str) -> dict[str, str]:
    env = harness.base_env(
        **common,
        TRACK_STORAGE_BACKEND="local",
        AWS_S3_ENABLED="true",
        AWS_STORAGE_BUCKET_NAME=bucket,
        AWS_ACCESS_KEY_ID=KEYS["access_key"],
        AWS_SECRET_ACCESS_KEY=KEYS["secret_key"],
        AWS_S3_REGION_NAME="us-east-1",
    )
    return env


def run_ours(
    bench: Bench,
    common: dict[str, str],
    dataset: str,
    n: int | None,
    files: int,
    size: int,
    *,
    keep_bucket: str | None = None,
) -> tuple[Result, dict[str, Any]]:
    bucket = keep_bucket or bench.bucket("veza")
    env = veza_env(
        {**common, "AWS_S3_ENDPOINT_URL": bench.endpoint}, bucket
    )  # fmt: skip
    cmd = [sys.executable, str(harness.ROOT / "manage.py"), "migrate_storage"]
    cmd += ["--to", "s3", "--json"] + ([] if n is None else ["--workers", str(n)])
    seconds, cpu, server, out = timed(cmd, env, bench.pid)
    summary = json.loads(out)
    expected = 0 if keep_bucket else files
    if summary["moved"] != expected or summary["failed"] or summary["skipped"]:
        raise RuntimeError(f"migrate_storage: unexpected summary {summary}")
    note = f"in-command {summary['seconds']:.2f} s"
    if not keep_bucket:
        note += "; " + bench.check_and_drop(bucket, files, files * size)
    result = Result(
        dataset, "veza", "default" if n is None else str(n), seconds, files,
        files * size, cpu, server, note,
    )  # fmt: skip
    return result, summary


@contextlib.contextmanager
def dataset_db(
    prefix: str, var: Path, media: Path, manifest: list[dict[str, Any]]
) -> Iterator[dict[str, str]]:
    """A fresh migrated database holding one local row per manifest entry."""
    with harness.database(prefix, var) as db_url:
        common = {
            "VEZA_VAR_DIR": str(var / "var"),
            "VEZA_MEDIA_ROOT": str(media),
            "DATABASE_URL": db_url,
        }
        env = harness.base_env(**common)
        harness.manage(env, "migrate", "--noinput")
        path = var / "manifest.json"
        path.write_text(json.dumps(manifest))
        out = harness.manage(
            {**env, "BENCH_MANIFEST": str(path)}, "shell", "-c", CREATE_ROWS
        )
        if int(out.split()[-1]) != len(manifest):
            raise RuntimeError(f"created {out!r} rows, expected {len(manifest)}")
        yield common


def reset_rows(common: dict[str, str]) -> None:
    harness.manage(harness.base_env(**common), "shell", "-c", RESET_ROWS)


def print_result(r: Result) -> None:
    print(
        f"  {r.dataset:5} {r.tool:6} {r.config:>7}: {r.seconds:7.2f} s "
        f"{r.files_per_s:8.1f} files/s {r.mb_per_s:7.1f} MB/s  "
        f"client CPU {r.client_cpu:6.1f} s, server CPU {r.server_cpu:6.1f} s  "
        f"[{r.note}]  {os.getloadavg()[0]:.2f}",
        flush=True,
    )


def bench_dataset(
    bench: Bench,
    name: str,
    configs: list[int | None],
    tools: list[str],
    results: list[Result],
) -> None:
    count, size = DATASETS[name]
    with contextlib.ExitStack() as stack:
        var = stack.enter_context(harness.temp_dir(f"veza-bench-migrate-{name}-"))
        media = var / "media"
        started = time.perf_counter()
        manifest = generate(media, count, size, SEED + size)
        print(
            f"{name}: {count} x {size // 1024} KiB generated in "
            f"{time.perf_counter() - started:.1f} s under {media}",
            flush=True,
        )
        common = stack.enter_context(
            dataset_db(f"veza_bench_migrate_{name}", var, media, manifest)
        )
        source = media / "tracks"
        dirty = False  # rows were flipped by an earlier run of ours
        for n in configs:
            for tool in tools:
                if tool == "veza":
                    if dirty:
                        reset_rows(common)
                    dirty = True
                    result, _ = run_ours(bench, common, name, n, count, size)
                else:
                    result = bench.run_tool(name, tool, source, n, size)
                results.append(result)
                print_result(result)


def bench_noop(bench: Bench, results: list[Result]) -> None:
    with contextlib.ExitStack() as stack:
        var = stack.enter_context(harness.temp_dir("veza-bench-migrate-noop-"))
        media = var / "media"
        manifest = generate(media, NOOP_FILES, NOOP_SIZE, SEED)
        common = stack.enter_context(
            dataset_db("veza_bench_migrate_noop", var, media, manifest)
        )
        bucket = bench.bucket("veza-noop")
        env_common = {**common, "AWS_S3_ENDPOINT_URL": bench.endpoint}
        cmd = [sys.executable, str(harness.ROOT / "manage.py"), "migrate_storage"]
        cmd += ["--to", "s3", "--json"]
        seconds, cpu, server, out = timed(cmd, veza_env(env_common, bucket), bench.pid)
        first = json.loads(out)
        if first["moved"] != NOOP_FILES:
            raise RuntimeError(f"first migrate_storage: {first}")
        results.append(
            Result("noop", "veza", "1st run", seconds, NOOP_FILES,
                   NOOP_FILES * NOOP_SIZE, cpu, server, f"{NOOP_FILES} x 1 KiB moved")
        )  # fmt: skip
        print_result(results[-1])
        result, summary = run_ours(
            bench, common, "noop", None, NOOP_FILES, NOOP_SIZE, keep_bucket=bucket
        )
        if summary["selected"] or summary.get("on_target") != NOOP_FILES:
            raise RuntimeError(f"no-op migrate_storage: {summary}")
        result.config = "re-run"
        result.note += (
            f"; selected {summary['selected']}, on target {summary['on_target']}"
        )
        results.append(result)
        print_result(result)
        source = media / "tracks"
        for tool in ("rclone", "s5cmd"):
            if not (bench.rclone if tool == "rclone" else bench.s5cmd):
                continue
            tool_bucket = bench.bucket(tool)
            env = bench.tool_env()
            for label in ("1st run", "re-run"):
                command = bench.tool_command(
                    tool, source, tool_bucket, None, rerun=label == "re-run"
                )
                seconds, cpu, server, _ = timed(command, env, bench.pid)
                results.append(
                    Result("noop", tool, label, seconds, NOOP_FILES,
                           NOOP_FILES * NOOP_SIZE, cpu, server,
                           "cp -n" if tool == "s5cmd" and label == "re-run" else "")
                )  # fmt: skip
                print_result(results[-1])
            bench.check_and_drop(tool_bucket, NOOP_FILES, NOOP_FILES * NOOP_SIZE)


# --- report -------------------------------------------------------------------


def report(results: list[Result], configs: list[int | None]) -> dict[str, Any]:
    summary: dict[str, Any] = {"results": [asdict(r) for r in results], "ratios": {}}
    labels = ["default" if n is None else str(n) for n in configs]
    for name in DATASETS:
        rows = [r for r in results if r.dataset == name]
        if not rows:
            continue
        count, size = DATASETS[name]
        print(f"\n{name}: {count} x {size // 1024} KiB ({count * size / 1e6:.0f} MB)")
        harness.print_table(
            ["tool", "config", "seconds", "files/s", "MB/s", "client CPU s",
             "server CPU s", "vs ours"],
            [
                [r.tool, r.config, f"{r.seconds:.2f}", f"{r.files_per_s:.1f}",
                 f"{r.mb_per_s:.1f}", f"{r.client_cpu:.1f}", f"{r.server_cpu:.1f}",
                 ratio_text(rows, r)]
                for r in rows
            ],
        )  # fmt: skip
        for label in labels:
            ours = find(rows, "veza", label)
            for tool in ("boto3", "rclone", "s5cmd", "aws"):
                theirs = find(rows, tool, label)
                if ours and theirs:
                    ratio = ours.files_per_s / theirs.files_per_s
                    summary["ratios"][f"{name}/{label}/{tool}"] = round(ratio, 3)
        goals = [("rclone", GOAL_RCLONE)]
        if name == "large":
            goals.append(("s5cmd", GOAL_S5CMD_LARGE))
        for tool, goal in goals:
            ratios = {
                label: summary["ratios"].get(f"{name}/{label}/{tool}")
                for label in labels
            }
            shown = ", ".join(
                f"{k} {v:.2f}x" for k, v in ratios.items() if v is not None
            )
            met = all(v is not None and v >= goal for v in ratios.values())
            print(
                f"  goal ours >= {goal}x {tool}: {shown} -> {'OK' if met else 'MISSED'}"
            )
    noop = [r for r in results if r.dataset == "noop"]
    if noop:
        print(f"\nno-op: {NOOP_FILES} files of {NOOP_SIZE} bytes already copied")
        harness.print_table(
            ["tool", "run", "seconds", "client CPU s", "server CPU s", "note"],
            [
                [r.tool, r.config, f"{r.seconds:.2f}", f"{r.client_cpu:.1f}",
                 f"{r.server_cpu:.1f}", r.note]
                for r in noop
            ],
        )  # fmt: skip
        ours = find(noop, "veza", "re-run")
        if ours:
            verdict = "OK" if ours.seconds < GOAL_NOOP_SECONDS else "MISSED"
            print(
                f"  goal no-op re-run < {GOAL_NOOP_SECONDS} s: "
                f"{ours.seconds:.2f} s -> {verdict}"
            )
    return summary


def find(rows: list[Result], tool: str, config: str) -> Result | None:
    return next((r for r in rows if r.tool == tool and r.config == config), None)


def ratio_text(rows: list[Result], r: Result) -> str:
    ours = find(rows, "veza", r.config)
    if r.tool == "veza" or ours is None:
        return "-"
    return f"{ours.files_per_s / r.files_per_s:.2f}x"


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--concurrency", default="8,16", help="matched N values")
    parser.add_argument("--datasets", default="large,small,noop")
    parser.add_argument("--no-aws", action="store_true", help="skip aws s3 cp")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="file counts x this (smoke tests)"
    )
    args = parser.parse_args()
    global NOOP_FILES
    for name, (count, size) in DATASETS.items():
        DATASETS[name] = (max(1, round(count * args.scale)), size)
    NOOP_FILES = max(1, round(NOOP_FILES * args.scale))
    configs: list[int | None] = [None]
    configs += [int(n) for n in args.concurrency.split(",") if n]
    chosen = args.datasets.split(",")
    print(harness.load_note(), flush=True)
    results: list[Result] = []
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        scratch = stack.enter_context(harness.temp_dir("veza-bench-migrate-"))
        server = start_s3_server(KEYS["access_key"], KEYS["secret_key"])
        stack.callback(server.stop)
        bench = Bench(server, scratch, use_aws=not args.no_aws)
        tools = ["veza", "boto3"] + [
            t
            for t, path in (
                ("rclone", bench.rclone),
                ("s5cmd", bench.s5cmd),
                ("aws", bench.aws),
            )
            if path
        ]
        print(f"tools: {', '.join(tools)}; configs {configs}", flush=True)
        for name in DATASETS:
            if name in chosen:
                bench_dataset(bench, name, configs, tools, results)
                print(harness.load_note(), flush=True)
        if "noop" in chosen:
            bench_noop(bench, results)
    print(harness.load_note())
    print(f"total {time.perf_counter() - started:.0f} s")
    summary = report(results, configs)
    harness.OUT.mkdir(parents=True, exist_ok=True)
    (harness.OUT / "bench_migrate.json").write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
