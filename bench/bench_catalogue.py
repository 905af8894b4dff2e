"""Catalogue benchmark: N tracks uploaded, packaged for HLS, moved to S3, audited.

A music catalogue the way an operator sees it, on one machine:

1. The project as deployed: gunicorn (infra/gunicorn.conf.py, 2 sync
   workers) on a throwaway PostgreSQL database, local storage,
   HLS_PACKAGE_ON_UPLOAD=true, and ONE task worker, `manage.py db_worker`
   as infra/run-dev.sh starts it. N seeded, distinct 3-minute WAVs (44.1 kHz
   stereo 16-bit, *music-like*, not white noise: a pad of chords with
   harmonics detuned between the channels, a plucked melody, bass, kick,
   hi-hat noise bursts and a noise floor at about -48 dBFS, each track in
   its own key, tempo, progression and melody; about 1.3 s of numpy per
   track, and AAC encodes it at ~0.9x the CPU of bench_hls_package's
   source) are uploaded through `POST /api/v1/tracks/` two at
   a time, as a user with a token would, and the bench waits until every
   track's HLS package is `ready` (the HlsPackage rows, polled in the
   database once a second; at the end `GET /api/v1/tracks/{id}/hls` must say
   `ready` for every track). Packaging seconds per track: the mean of the
   rows' encode_seconds + store_seconds, and the wall time from the first
   upload to the last package finished, divided by N.
2. Objects per track: the files on disk under MEDIA_ROOT/tracks and
   MEDIA_ROOT/hls, divided by N, and their MiB; beside them the files the
   HlsPackage rows list. Nothing assumes a package layout: files are counted.
3. Per round (`--rounds`, the order alternating), each side copies that tree
   into a fresh bucket of a fresh `rclone serve s3`, timed as a whole
   process, start-up included:

   * ours: `manage.py migrate_storage --to s3 --workers 8 --json` (the track
     and package rows are put back on `local`, untimed, before each of our
     runs, and the storage tally recounted);
   * `rclone copy MEDIA_ROOT bench:<bucket> --transfers 8 --checkers 8`,
     tracks/ and hls/ only.

   Tracks per second for both and the ratio ours / rclone; objects and
   bytes are checked on the server's disk after every run. Client CPU per
   object: for ours, the migrate_storage process (children included) plus
   the PostgreSQL backends of the bench database (their /proc CPU, found by
   their process titles and sampled every 50 ms, so a backend's last 50 ms
   may be missed); for rclone, its process. For information, the CPU of the
   whole PostgreSQL server during our run (every process, and backends that
   exited): it includes other databases' work if other work shares it.
4. The listing audit, after each of our migrations, on that bucket:
   `manage.py migrate_storage --verify-only --to s3 --json`, as a process.
5. A projection to 1,000,000 tracks: objects, PUT requests (one per
   object), hours with one runner and with 8 (linear: tracks/s x runners,
   ignoring any server limit), and the audit's listing time scaled
   linearly by objects (its in-command seconds, start-up excluded).

`--project DIR` runs another checkout's manage.py and gunicorn config (this
script, its harness and the test S3 server stay this checkout's), e.g. to
measure a change: `git worktree add /tmp/before <commit>`, then
`.venv/bin/python bench/bench_catalogue.py --project /tmp/before`. The raw
figures go to bench/out/<--name>.json (catalogue.json by default).

    .venv/bin/python bench/bench_catalogue.py [--tracks 30] [--seconds 180]
        [--rounds 1] [--workers 8] [--project DIR] [--name catalogue] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
import wave
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import harness
import numpy as np
from bench_migrate import (
    BUCKET,
    children_cpu,
    find_tool,
    fresh_server,
    proc_cpu,
    tool_env,
    veza_env,
)
from bench_upload import upload

from tests.s3server import S3Server

SAMPLE_RATE = 44_100
SEED = 20_260_301
MiB = 1024 * 1024
TREES = ("tracks", "hls")
UPLOAD_THREADS = 2
RUN_TIMEOUT = 900  # seconds per timed command
PACKAGE_TIMEOUT = 300  # seconds, plus PACKAGE_TIMEOUT_PER_TRACK per track
PACKAGE_TIMEOUT_PER_TRACK = 90
PROJECTED_TRACKS = 1_000_000
PROJECTED_RUNNERS = 8
LIST_PAGE = 1000  # keys per ListObjectsV2 page

RESET_ROWS = """
from mediastore.tally import tally_recount
from streaming.models import HlsPackage
from tracks.models import Track
tracks = Track.objects.update(
    storage_backend="local", storage_etag="", storage_verified_at=None,
    migration_state="", migration_target="", migration_runner="",
    migration_lease_until=None, migration_error="",
)
fields = {f.name for f in HlsPackage._meta.get_fields()}
reset = {"storage_backend": "local"}
if "etags" in fields:
    reset["etags"] = {}
packages = HlsPackage.objects.update(**reset)
tally_recount()
print(tracks, packages)
"""

PACKAGE_ROWS = """
import json
from streaming.models import HlsPackage
rows = HlsPackage.objects.filter(status="ready").values(
    "track_id", "encode_seconds", "store_seconds", "files", "total_bytes",
    "created_at", "started_at", "finished_at", "attempts",
)
print(json.dumps([
    {**r, "track_id": str(r["track_id"]), "files": len(r["files"] or {}),
     "file_bytes": sum(int(s) for s in (r["files"] or {}).values())}
    for r in rows
], default=str))
"""


# --- the catalogue ------------------------------------------------------------

_MAJOR = [0, 2, 4, 5, 7, 9, 11]
# Scale degrees of the chords a progression picks from (I, ii, iii, IV, V, vi).
_DEGREES = [0, 1, 2, 3, 4, 5]


def _hz(note: float) -> float:
    return float(440.0 * 2 ** ((note - 69) / 12))


def _tone(freq: float, t: np.ndarray, harmonics: int, rolloff: float = 1.0) -> Any:
    """`harmonics` partials of `freq` (amplitude 1/k**rolloff) below Nyquist."""
    phase = np.float32(2 * np.pi * freq) * t
    out = np.sin(phase)
    for k in range(2, harmonics + 1):
        if freq * k < SAMPLE_RATE / 2.2:
            out += np.sin(k * phase) / np.float32(k**rolloff)
    return out


def _bar(
    t: np.ndarray, chord: list[int], melody: list[int], rng: np.random.Generator
) -> np.ndarray:
    """One bar as (samples, 2) float32 in about [-1, 1]: a pad detuned between
    the channels, a plucked melody left of centre, bass, kick on the beats,
    hi-hat on the eighths right of centre, and a noise floor."""
    n = len(t)
    length = np.float32(n / SAMPLE_RATE)
    fade = np.minimum(1.0, np.minimum(t / 0.02, (length - t) / 0.05)) * 0.06
    left = np.zeros(n, np.float32)
    right = np.zeros(n, np.float32)
    for note in chord:
        left += _tone(_hz(note), t, 6, 1.5) * fade
        right += _tone(_hz(note) * 1.003, t, 6, 1.5) * fade
    step = n // len(melody)
    for i, note in enumerate(melody):
        tn = t[: n - i * step] if i == len(melody) - 1 else t[:step]
        pluck = np.exp(-tn * 6) * np.minimum(1.0, tn / 0.004) * 0.2
        tone = _tone(_hz(note), tn, 8) * pluck
        left[i * step : i * step + len(tn)] += 0.65 * tone
        right[i * step : i * step + len(tn)] += 0.35 * tone
    beat = np.float32(length / 4)
    local = np.mod(t, beat)
    drums = 0.3 * np.sin(2 * np.pi * (50 * local + 2.3 * (1 - np.exp(-local * 30))))
    drums *= np.exp(-local * 12)
    drums += _tone(_hz(chord[0] - 24), t, 3, 2.0) * (0.22 * np.exp(-local * 2))
    noise = rng.standard_normal(n + 1, dtype=np.float32)
    hat = np.diff(noise) * (0.05 * np.exp(-np.mod(t, beat / 2) * 60))
    floor = rng.standard_normal((n, 2), dtype=np.float32) * np.float32(0.004)
    left += drums + 0.4 * hat + floor[:, 0]
    right += drums + 0.8 * hat + floor[:, 1]
    return np.stack([left, right], axis=1)


def make_track(path: Path, seconds: int, seed: int) -> None:
    """A seeded music-like WAV (44.1 kHz stereo pcm_s16le): key, tempo,
    progression and melody are the seed's."""
    rng = np.random.default_rng(seed)
    key = 48 + int(rng.integers(12))
    scale = [key + 12 * octave + step for octave in (1, 2) for step in _MAJOR]
    progression = [int(d) for d in rng.choice(_DEGREES, 4, replace=False)]
    bar_seconds = float(rng.uniform(1.6, 2.6))
    bar_samples = int(bar_seconds * SAMPLE_RATE)
    total = seconds * SAMPLE_RATE
    tmp = path.with_suffix(".partial")
    with wave.open(str(tmp), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        written = index = 0
        while written < total:
            n = min(bar_samples, total - written)
            t = (np.arange(n) / SAMPLE_RATE).astype(np.float32)
            degree = progression[index % len(progression)]
            chord = [scale[(degree + k) % 7] for k in (0, 2, 4)]
            melody = [scale[int(i)] for i in rng.integers(0, len(scale), 8)]
            pcm = np.clip(_bar(t, chord, melody, rng), -1, 1) * 32767
            out.writeframes(pcm.astype("<i2").tobytes())
            written += n
            index += 1
    tmp.replace(path)


# --- the project ----------------------------------------------------------------


@contextlib.contextmanager
def task_worker(
    env: dict[str, str], project: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """One `manage.py db_worker`, as infra/run-dev.sh starts it."""
    harness.OUT.mkdir(parents=True, exist_ok=True)
    with (harness.OUT / "catalogue-worker.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, str(project / "manage.py"), "db_worker"],
            cwd=project,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield process
        finally:
            harness.stop_process(process)


def project_note(project: Path) -> str:
    def git(*args: str) -> str:
        result = subprocess.run(
            ["git", "-C", str(project), *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return result.stdout.strip()

    changed = [line for line in git("status", "--porcelain").splitlines() if line]
    return (
        f"{project} at {git('rev-parse', '--short', 'HEAD')} ({len(changed)} changed)"
    )


# --- step 1: upload and package ---------------------------------------------------


@dataclass
class Catalogue:
    tracks: int
    audio_seconds: int
    generate_seconds: float
    upload_seconds: float  # first upload sent .. last upload answered
    ready_wall_seconds: float  # first upload sent .. last package finished
    encode_seconds_mean: float
    store_seconds_mean: float
    package_seconds_max: float
    package_files_mean: float  # len(HlsPackage.files)
    attempts_max: int
    files: dict[str, int] = field(default_factory=dict)  # per tree, on disk
    bytes: dict[str, int] = field(default_factory=dict)
    other_files: int = 0  # anything else under MEDIA_ROOT

    @property
    def objects(self) -> int:
        return sum(self.files.values())

    @property
    def total_bytes(self) -> int:
        return sum(self.bytes.values())

    @property
    def packaging_seconds_mean(self) -> float:
        return self.encode_seconds_mean + self.store_seconds_mean


def _pg_connect(db_url: str) -> Any:
    import psycopg

    return psycopg.connect(db_url, autocommit=True, connect_timeout=10)


def wait_packaged(
    db_url: str, track_ids: list[str], worker: subprocess.Popen[bytes]
) -> None:
    """Until every track has a ready package; raise on a failure or a timeout."""
    deadline = (
        time.monotonic() + PACKAGE_TIMEOUT + PACKAGE_TIMEOUT_PER_TRACK * len(track_ids)
    )
    last_print = 0.0
    with _pg_connect(db_url) as conn:
        while True:
            ready, failed = conn.execute(
                "SELECT count(DISTINCT track_id) FILTER (WHERE status = 'ready'),"
                " count(*) FILTER (WHERE status = 'failed')"
                " FROM streaming_hlspackage WHERE track_id = ANY(%s::uuid[])",
                (track_ids,),
            ).fetchone()
            if failed:
                errors = conn.execute(
                    "SELECT error_code, error FROM streaming_hlspackage"
                    " WHERE status = 'failed' LIMIT 3"
                ).fetchall()
                raise RuntimeError(f"{failed} package(s) failed: {errors}")
            if ready == len(track_ids):
                return
            if worker.poll() is not None:
                raise RuntimeError(f"db_worker exited with {worker.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {ready}/{len(track_ids)} packaged in time")
            if time.monotonic() - last_print > 30:
                last_print = time.monotonic()
                print(
                    f"  {ready}/{len(track_ids)} packaged, load "
                    f"{os.getloadavg()[0]:.2f}",
                    flush=True,
                )
            time.sleep(1)


def check_api_ready(url: str, token: str, track_ids: list[str]) -> None:
    """What the player asks: GET /api/v1/tracks/{id}/hls says ready for all."""
    for track_id in track_ids:
        request = urllib.request.Request(
            f"{url}/api/v1/tracks/{track_id}/hls",
            headers={"Authorization": f"Token {token}"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            body = json.loads(response.read())
        if body["status"] != "ready" or not body["master_url"]:
            raise RuntimeError(f"track {track_id}: /hls answered {body}")


def count_tree(media: Path) -> tuple[dict[str, int], dict[str, int], int]:
    """Files and bytes per tree (tracks/, hls/), and the count of other files."""
    files = dict.fromkeys(TREES, 0)
    sizes = dict.fromkeys(TREES, 0)
    other = 0
    for path in media.rglob("*"):
        if not path.is_file():
            continue
        tree = path.relative_to(media).parts[0]
        if tree in files:
            files[tree] += 1
            sizes[tree] += path.stat().st_size
        else:
            other += 1
    return files, sizes, other


def _time(value: str) -> float:
    return dt.datetime.fromisoformat(value).timestamp()


def build_catalogue(
    args: argparse.Namespace, var: Path, env: dict[str, str], db_url: str
) -> Catalogue:
    project: Path = args.project
    token = harness.migrate_and_make_user(env, project=project)["token"]
    staging = var / "staging"
    staging.mkdir()
    started = time.perf_counter()
    paths = []
    for i in range(args.tracks):
        path = staging / f"catalogue-{i:04d}.wav"
        make_track(path, args.seconds, SEED + i)
        paths.append(path)
    generate_seconds = time.perf_counter() - started
    size = paths[0].stat().st_size
    print(
        f"{args.tracks} tracks of {args.seconds} s ({size / MiB:.1f} MiB each) "
        f"generated in {generate_seconds:.1f} s",
        flush=True,
    )
    env = {**env, "TRACK_MAX_UPLOAD_BYTES": str(max(size * 2, 512 * MiB))}
    with (
        harness.gunicorn(
            "veza.wsgi", env, name="catalogue-gunicorn", project=project
        ) as web,
        task_worker(env, project) as worker,
    ):
        first_sent = time.time()
        started = time.perf_counter()
        with ThreadPoolExecutor(UPLOAD_THREADS) as pool:
            answers = list(pool.map(lambda p: upload(web.url, token, p)[1], paths))
        upload_seconds = time.perf_counter() - started
        track_ids = [str(a["id"]) for a in answers]
        if len(set(track_ids)) != args.tracks:
            raise RuntimeError("uploads did not all create tracks")
        print(
            f"  uploaded in {upload_seconds:.1f} s "
            f"({args.tracks * size / 1e6 / upload_seconds:.1f} MB/s); packaging...",
            flush=True,
        )
        wait_packaged(db_url, track_ids, worker)
        check_api_ready(web.url, token, track_ids)
    for path in paths:
        path.unlink()
    rows = json.loads(
        harness.manage(env, "shell", "-c", PACKAGE_ROWS, project=project)
        .strip()
        .splitlines()[-1]
    )
    if {r["track_id"] for r in rows} != set(track_ids) or len(rows) != len(track_ids):
        raise RuntimeError(f"{len(rows)} ready packages for {len(track_ids)} tracks")
    files, sizes, other = count_tree(Path(env["VEZA_MEDIA_ROOT"]))
    encode = [float(r["encode_seconds"] or 0) for r in rows]
    store = [float(r["store_seconds"] or 0) for r in rows]
    catalogue = Catalogue(
        tracks=args.tracks,
        audio_seconds=args.seconds,
        generate_seconds=round(generate_seconds, 2),
        upload_seconds=round(upload_seconds, 2),
        ready_wall_seconds=round(
            max(_time(r["finished_at"]) for r in rows) - first_sent, 2
        ),
        encode_seconds_mean=round(sum(encode) / len(encode), 3),
        store_seconds_mean=round(sum(store) / len(store), 3),
        package_seconds_max=round(
            max(e + s for e, s in zip(encode, store, strict=True)), 3
        ),
        package_files_mean=sum(r["files"] for r in rows) / len(rows),
        attempts_max=max(int(r["attempts"]) for r in rows),
        files=files,
        bytes=sizes,
        other_files=other,
    )
    if files["hls"] != sum(r["files"] for r in rows):
        print(
            f"  NOTE: {files['hls']} files under hls/ but the rows list "
            f"{sum(r['files'] for r in rows)}",
            flush=True,
        )
    if files["tracks"] != args.tracks:
        print(f"  NOTE: {files['tracks']} files under tracks/ for {args.tracks} tracks")
    return catalogue


# --- step 3: the migration, beside rclone ---------------------------------------


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _cpu(fields: list[str], *, reaped: bool = False) -> float:
    """utime + stime (and, with `reaped`, cutime + cstime) in seconds."""
    ticks = int(fields[11]) + int(fields[12])
    if reaped:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


class PostgresCpu:
    """CPU of a PostgreSQL server while a block runs.

    `database`: its backends connected to one database, found by their
    process titles ("postgres: ... user DB host(port) state") among the
    postmaster's children, sampled every `interval` seconds (a backend is
    counted from its fork; what it spends after the last sample is missed).
    `server`: every process of the server plus the CPU of the backends it
    reaped meanwhile (the postmaster's cutime/cstime): exact, but it counts
    every database's work.
    """

    def __init__(self, postmaster: int, database: str, interval: float = 0.05):
        self.postmaster = postmaster
        self.needle = f" {database} ".encode()
        self.interval = interval
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.database = 0.0
        self.server = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _server_total(self) -> float:
        total = 0.0
        for pid in [self.postmaster, *_children(self.postmaster)]:
            fields = _stat(pid)
            if fields:
                total += _cpu(fields, reaped=pid == self.postmaster)
        return total

    def _sample(self, *, start: bool = False) -> None:
        for pid in _children(self.postmaster):
            try:
                title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if self.needle not in title + b" ":
                continue
            fields = _stat(pid)
            if fields is None:
                continue
            cpu = _cpu(fields)
            self.first.setdefault(pid, cpu if start else 0.0)
            self.last[pid] = cpu

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> PostgresCpu:
        self._server0 = self._server_total()
        self._sample(start=True)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        self._sample()
        self.database = sum(self.last[p] - self.first[p] for p in self.last)
        self.server = self._server_total() - self._server0


def postmaster_pid(db_url: str) -> int | None:
    """The parent of a backend of ours is the postmaster."""
    if not db_url.startswith("postgres"):
        return None
    with _pg_connect(db_url) as conn:
        backend = int(conn.execute("SELECT pg_backend_pid()").fetchone()[0])
    fields = _stat(backend)
    return int(fields[1]) if fields else None


@dataclass
class Result:
    round: int
    side: str
    seconds: float
    tracks: int
    objects: int
    bytes: int
    client_cpu: float  # the command and its children, user + sys seconds
    postgres_cpu: float  # the bench database's backends during the run
    postgres_server_cpu: float  # the whole PostgreSQL server during the run
    s3_server_cpu: float  # `rclone serve s3` during the run
    note: str = ""

    @property
    def tracks_per_s(self) -> float:
        return self.tracks / self.seconds

    @property
    def cpu_ms_per_object(self) -> float:
        return (self.client_cpu + self.postgres_cpu) * 1000 / self.objects


@dataclass
class Timed:
    seconds: float
    client_cpu: float
    postgres_cpu: float
    postgres_server_cpu: float
    s3_server_cpu: float
    stdout: str


def timed(
    cmd: list[str],
    env: dict[str, str],
    cwd: Path,
    server: S3Server,
    postmaster: int | None,
    database: str,
) -> Timed:
    """Run a command as a whole process; its wall time and CPU, or raise."""
    probe = (
        PostgresCpu(postmaster, database)
        if postmaster is not None
        else contextlib.nullcontext()
    )
    cpu0, s3_0 = children_cpu(), proc_cpu(server.process.pid)
    with probe:
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
    cpu, s3 = children_cpu() - cpu0, proc_cpu(server.process.pid) - s3_0
    if result.returncode:
        raise RuntimeError(
            f"{Path(cmd[1] if cmd[0] == sys.executable else cmd[0]).name} "
            f"{' '.join(cmd[2:4])} exited {result.returncode}:\n"
            f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
        )
    pg = probe if isinstance(probe, PostgresCpu) else None
    return Timed(
        seconds,
        cpu,
        pg.database if pg else 0.0,
        pg.server if pg else 0.0,
        s3,
        result.stdout,
    )


def check_bucket(server: S3Server, catalogue: Catalogue) -> str:
    """The trees' objects and bytes on the server's disk, as on ours."""
    files, sizes, _ = count_tree(server.root / BUCKET)
    if files != catalogue.files or sizes != catalogue.bytes:
        raise RuntimeError(
            f"bucket holds {files} files, {sizes} bytes; "
            f"expected {catalogue.files}, {catalogue.bytes}"
        )
    return f"{sum(files.values())} objects OK"


def rclone_command(rclone: str, media: Path, workers: int) -> list[str]:
    return [
        rclone, "--config", "/dev/null", "copy", str(media), f"bench:{BUCKET}",
        *(arg for tree in TREES for arg in ("--include", f"/{tree}/**")),
        "--transfers", str(workers), "--checkers", str(workers),
    ]  # fmt: skip


def migrate_command(project: Path, *args: str) -> list[str]:
    return [sys.executable, str(project / "manage.py"), "migrate_storage", *args]


def run_ours(
    args: argparse.Namespace,
    common: dict[str, str],
    catalogue: Catalogue,
    server: S3Server,
    postmaster: int | None,
    database: str,
    round_no: int,
) -> tuple[Result, dict[str, Any]]:
    env = veza_env(common, server, package_on_upload=True)
    harness.manage(env, "shell", "-c", RESET_ROWS, project=args.project)
    os.sync()
    cmd = migrate_command(
        args.project, "--to", "s3", "--workers", str(args.workers), "--json"
    )
    run = timed(cmd, env, args.project, server, postmaster, database)
    summary = json.loads(run.stdout)
    note = check_bucket(server, catalogue)
    if summary["moved"] != catalogue.tracks or summary["failed"]:
        raise RuntimeError(f"migrate_storage: {summary}")
    package_files = summary.get("package_files")
    if package_files is not None and package_files != catalogue.files["hls"]:
        note += f"; package_files {package_files} != {catalogue.files['hls']} on disk"
    note += f"; in-command {summary['seconds']:.2f} s"
    result = Result(
        round_no, "ours", run.seconds, catalogue.tracks, catalogue.objects,
        catalogue.total_bytes, run.client_cpu, run.postgres_cpu,
        run.postgres_server_cpu, run.s3_server_cpu, note,
    )  # fmt: skip
    print_result(result)
    # The listing audit of what was just moved, on the same bucket.
    cmd = migrate_command(args.project, "--verify-only", "--to", "s3", "--json")
    audit_run = timed(cmd, env, args.project, server, postmaster, database)
    report = json.loads(audit_run.stdout)
    audit = {
        "round": round_no,
        "seconds": round(audit_run.seconds, 3),
        "in_command_seconds": report["seconds"],
        "listed": report["listed"],
        "checked": report["checked"],
        "clean": report["clean"],
        "client_cpu": round(audit_run.client_cpu, 3),
        "postgres_cpu": round(audit_run.postgres_cpu, 3),
        **{k: v for k, v in report.items() if k.endswith("_files_checked")},
        "counts": {
            k: report[k] for k in ("missing_count", "mismatched_count", "orphans_count")
        },
    }
    print(
        f"  r{round_no} audit       : {audit_run.seconds:6.2f} s as a process, "
        f"{report['seconds']:.2f} s in-command, {report['listed']} objects listed, "
        f"{report['checked']} tracks checked, clean={report['clean']}",
        flush=True,
    )
    return result, {"migrate": summary, "audit": audit}


def run_rclone(
    args: argparse.Namespace,
    rclone: str,
    media: Path,
    catalogue: Catalogue,
    server: S3Server,
    round_no: int,
) -> Result:
    os.sync()
    cmd = rclone_command(rclone, media, args.workers)
    run = timed(cmd, tool_env(server), harness.ROOT, server, None, "")
    note = check_bucket(server, catalogue)
    result = Result(
        round_no, "rclone", run.seconds, catalogue.tracks, catalogue.objects,
        catalogue.total_bytes, run.client_cpu, 0.0, 0.0, run.s3_server_cpu, note,
    )  # fmt: skip
    print_result(result)
    return result


def print_result(r: Result) -> None:
    pg = f" + PostgreSQL {r.postgres_cpu:.2f} s" if r.side == "ours" else ""
    print(
        f"  r{r.round} {r.side:12}: {r.seconds:6.2f} s {r.tracks_per_s:6.2f} tracks/s "
        f"{r.objects / r.seconds:7.1f} objects/s  client CPU {r.client_cpu:.2f} s"
        f"{pg} = {r.cpu_ms_per_object:.2f} ms/object, S3 server CPU "
        f"{r.s3_server_cpu:.2f} s  [{r.note}]  load {os.getloadavg()[0]:.2f}",
        flush=True,
    )


# --- the report -------------------------------------------------------------------


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:,.1f} h"


def report(
    catalogue: Catalogue,
    results: list[Result],
    audits: list[dict[str, Any]],
) -> dict[str, Any]:
    med = harness.median
    n = catalogue.tracks
    print()
    print(
        f"Catalogue: {n} tracks of {catalogue.audio_seconds} s, one db_worker, "
        f"{UPLOAD_THREADS} uploads at a time"
    )
    wall_per_track = catalogue.ready_wall_seconds / n
    harness.print_table(
        ["what", "value"],
        [
            ["packaging s/track (encode + store, mean)",
             f"{catalogue.packaging_seconds_mean:.2f} "
             f"({catalogue.encode_seconds_mean:.2f} + "
             f"{catalogue.store_seconds_mean:.2f}; max "
             f"{catalogue.package_seconds_max:.2f})"],
            ["first upload -> last ready, s / N",
             f"{wall_per_track:.2f} ({catalogue.ready_wall_seconds:.1f} s in all)"],
            ["uploads, s in all", f"{catalogue.upload_seconds:.1f}"],
            ["package attempts, max", str(catalogue.attempts_max)],
            ["objects per track (files on disk)",
             f"{catalogue.objects / n:.2f} (tracks/ {catalogue.files['tracks'] / n:.2f}"
             f", hls/ {catalogue.files['hls'] / n:.2f})"],
            ["HlsPackage.files per package", f"{catalogue.package_files_mean:.2f}"],
            ["MiB per track",
             f"{catalogue.total_bytes / MiB / n:.2f} (tracks/ "
             f"{catalogue.bytes['tracks'] / MiB / n:.2f}, hls/ "
             f"{catalogue.bytes['hls'] / MiB / n:.2f})"],
            ["other files under MEDIA_ROOT", str(catalogue.other_files)],
        ],
    )  # fmt: skip

    print()
    print(
        f"Migration to a fresh `rclone serve s3`, {catalogue.objects} objects, "
        f"{catalogue.total_bytes / MiB:.0f} MiB, whole processes; median of rounds"
    )
    rows = []
    sides = [s for s in ("ours", "rclone") if any(r.side == s for r in results)]
    ratios = []
    for r in results:
        if r.side == "rclone":
            ours = next(
                (x for x in results if x.side == "ours" and x.round == r.round), None
            )
            if ours:
                ratios.append(ours.tracks_per_s / r.tracks_per_s)
    for side in sides:
        mine = [r for r in results if r.side == side]
        seconds = med([r.seconds for r in mine])
        rows.append(
            [
                side,
                f"{seconds:.2f}",
                f"{n / seconds:.2f}",
                f"{catalogue.objects / seconds:.1f}",
                f"{med([r.client_cpu for r in mine]):.2f}",
                f"{med([r.postgres_cpu for r in mine]):.2f}" if side == "ours" else "-",
                f"{med([r.cpu_ms_per_object for r in mine]):.2f}",
                f"{med([r.s3_server_cpu for r in mine]):.2f}",
            ]
        )
    harness.print_table(
        ["side", "seconds", "tracks/s", "objects/s", "client CPU s",
         "+ PostgreSQL CPU s", "client CPU ms/object", "S3 server CPU s"],
        rows,
    )  # fmt: skip
    summary: dict[str, Any] = {
        "catalogue": {
            **asdict(catalogue),
            "objects": catalogue.objects,
            "total_bytes": catalogue.total_bytes,
            "objects_per_track": catalogue.objects / n,
            "mib_per_track": catalogue.total_bytes / MiB / n,
            "packaging_seconds_mean": catalogue.packaging_seconds_mean,
            "ready_wall_seconds_per_track": wall_per_track,
        },
        "results": [
            {
                **asdict(r),
                "tracks_per_s": r.tracks_per_s,
                "cpu_ms_per_object": r.cpu_ms_per_object,
            }
            for r in results
        ],
        "audits": audits,
    }
    if ratios:
        ratio = med(ratios)
        summary["ratio_ours_rclone"] = {
            "median": round(ratio, 3),
            "rounds": [round(x, 3) for x in ratios],
        }
        print(
            f"ours / rclone, tracks/s: {ratio:.2f}x "
            f"(rounds {', '.join(f'{x:.2f}' for x in ratios)})"
        )
    if any(r.side == "ours" for r in results):
        pg_server = med([r.postgres_server_cpu for r in results if r.side == "ours"])
        print(
            f"  (whole PostgreSQL server CPU during ours: {pg_server:.2f} s, "
            "all databases)"
        )
    if audits:
        seconds = med([a["seconds"] for a in audits])
        inside = med([a["in_command_seconds"] for a in audits])
        listed = audits[-1]["listed"]
        print(
            f"Audit (--verify-only --to s3): {seconds:.2f} s as a process, "
            f"{inside:.2f} s in-command, {listed} objects listed "
            f"({listed / inside if inside else 0:,.0f} objects/s in-command)"
        )
    summary["projection"] = projection(catalogue, results, audits)
    return summary


def projection(
    catalogue: Catalogue, results: list[Result], audits: list[dict[str, Any]]
) -> dict[str, Any]:
    med = harness.median
    m = PROJECTED_TRACKS
    per_track = catalogue.objects / catalogue.tracks
    objects = per_track * m
    out: dict[str, Any] = {
        "tracks": m,
        "objects": round(objects),
        "put_requests": round(objects),
        "tib": catalogue.total_bytes / catalogue.tracks * m / 1024**4,
        "packaging_worker_hours": catalogue.ready_wall_seconds
        / catalogue.tracks
        * m
        / 3600,
    }
    rows = [
        ["objects (= PUT requests)", f"{objects:,.0f}"],
        ["bytes", f"{out['tib']:.1f} TiB"],
        ["packaging, one db_worker (first upload -> last ready rate)",
         _hours(out["packaging_worker_hours"] * 3600)],
    ]  # fmt: skip
    for side in ("ours", "rclone"):
        mine = [r for r in results if r.side == side]
        if not mine:
            continue
        rate = med([r.tracks_per_s for r in mine])
        one = m / rate
        out[f"{side}_hours_1_runner"] = one / 3600
        out[f"{side}_hours_{PROJECTED_RUNNERS}_runners"] = (
            one / PROJECTED_RUNNERS / 3600
        )
        rows.append([f"{side}: migration, 1 runner", _hours(one)])
        rows.append(
            [f"{side}: migration, {PROJECTED_RUNNERS} runners (linear)",
             _hours(one / PROJECTED_RUNNERS)]
        )  # fmt: skip
    if audits:
        inside = med([a["in_command_seconds"] for a in audits])
        listed = audits[-1]["listed"]
        if listed:
            audit = inside * objects / listed
            out["audit_hours"] = audit / 3600
            out["list_requests"] = round(objects / LIST_PAGE)
            rows.append(
                ["audit listing (in-command s scaled by objects)", _hours(audit)]
            )
            rows.append(
                [f"  ListObjects requests ({LIST_PAGE} keys a page)",
                 f"{objects / LIST_PAGE:,.0f}"]
            )  # fmt: skip
    print()
    print(
        f"Projection to {m:,} tracks (linear in tracks and objects; runners "
        "scale linearly, ignoring S3 and database limits)"
    )
    harness.print_table(["what", "value"], rows)
    return out


# --- main -------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    rclone = find_tool("rclone")
    print(harness.load_note().strip() + " at start", flush=True)
    print(f"project: {project_note(args.project)}", flush=True)
    print(
        f"{args.tracks} tracks x {args.seconds} s, {args.rounds} round(s), "
        f"{args.workers} in flight; rclone: {rclone or 'MISSING (skipped)'}",
        flush=True,
    )
    started = time.perf_counter()
    results: list[Result] = []
    audits: list[dict[str, Any]] = []
    migrations: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        var = stack.enter_context(harness.temp_dir("veza-bench-catalogue-"))
        db_url = stack.enter_context(harness.database("veza_bench_catalogue", var))
        database = db_url.rsplit("/", 1)[1]
        common = {
            "VEZA_VAR_DIR": str(var / "var"),
            "VEZA_MEDIA_ROOT": str(var / "media"),
            "DATABASE_URL": db_url,
        }
        catalogue = build_catalogue(
            args, var, veza_env(common, package_on_upload=True), db_url
        )
        print(harness.load_note().strip() + " after packaging", flush=True)
        postmaster = postmaster_pid(db_url)
        media = Path(common["VEZA_MEDIA_ROOT"])
        sides = ["ours", *(["rclone"] if rclone else [])]
        for round_no in range(args.rounds):
            order = sides if round_no % 2 == 0 else sides[::-1]
            for side in order:
                if count_tree(media)[:2] != (catalogue.files, catalogue.bytes):
                    raise RuntimeError("MEDIA_ROOT changed between runs")
                with fresh_server() as server:
                    if side == "ours":
                        result, extra = run_ours(
                            args, common, catalogue, server, postmaster, database,
                            round_no,
                        )  # fmt: skip
                        audits.append(extra["audit"])
                        migrations.append(extra["migrate"])
                    elif rclone is not None:
                        result = run_rclone(
                            args, rclone, media, catalogue, server, round_no
                        )
                    results.append(result)
    print(harness.load_note().strip() + " at the end", flush=True)
    print(f"total {time.perf_counter() - started:.0f} s")
    summary = report(catalogue, results, audits)
    summary["migrate_summaries"] = migrations
    summary["project"] = project_note(args.project)
    summary["args"] = {k: str(v) for k, v in vars(args).items()}
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tracks", type=int, default=30)
    parser.add_argument("--seconds", type=int, default=180, help="per track")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--workers", type=int, default=8, help="transfers in flight")
    parser.add_argument(
        "--project",
        type=Path,
        default=harness.ROOT,
        help="the checkout whose manage.py and gunicorn config run",
    )
    parser.add_argument(
        "--name", default="catalogue", help="raw JSON to bench/out/NAME.json"
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 3 tracks of 20 s"
    )
    args = parser.parse_args()
    if args.quick:
        args.tracks, args.seconds = 3, 20
    args.project = args.project.resolve()
    if not (args.project / "manage.py").exists():
        parser.error(f"no manage.py in {args.project}")
    if args.tracks < 1 or args.rounds < 0:
        parser.error("--tracks must be at least 1 and --rounds not negative")
    summary = run(args)
    print(f"raw figures: {harness.write_results(args.name, summary)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
