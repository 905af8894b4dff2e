"""Storage migration at catalogue size: 1,000,000 tracks in PostgreSQL.

Builds the rows with SQL in a fresh PostgreSQL database (a few seconds),
counts the storage tallies once (`manage.py storage_tally --recount`), then,
with the rows 0 %, 50 %, 90 %, 99 % and 100 % moved to S3 (in id order, as a
migration moves them), measures what an operator and the admin meet:

* one claim of 32 rows (the claim a runner makes every batch), its EXPLAIN;
* `manage.py migrate_storage --to s3 --dry-run` and, all moved, the no-op
  re-run `manage.py migrate_storage --to s3`, as whole processes (Python and
  Django start-up included), the median of several runs;
* the admin's storage page and its `status.json` poll, over HTTP from
  gunicorn (2 sync workers) with a staff session, median and p95;
* takeover after SIGKILL: 3,000 rows with real files on local disk and a
  real S3 server (`rclone serve s3`); a runner is killed mid-run and a second
  one started at once: how long until the second takes over the rows the
  first held, and the whole run's time;
* `--verify-only` (listing-based) against 1,000,000 objects on the S3
  server (64-byte files written onto its disk), objects per second and peak
  memory, beside `rclone lsf -R --format psh` (size and MD5 of every object)
  of the same bucket.

The rows belong to 1,000 owners, about half of them public; at 90 % moved
the reads are measured too: the API's track list (first page, and the page
250,000 rows deep by its cursor) with a listener's token, and the admin's
track changelist (plain, filtered by backend, searched for an owner and a
title), median and p95 over HTTP.

Goals (issue "Storage at catalogue scale"): claim < 20 ms at every stage,
no-op and dry-run < 1 s, page and poll < 30 ms, takeover within seconds,
verify-only >= 5,000 objects/s; (issue "API contract and reads at scale")
API list pages < 20 ms, admin changelist pages < 200 ms.

    .venv/bin/python bench/bench_scale.py [--rows 1000000] [--skip-objects]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

import harness
import psycopg
import requests

from tests.s3server import start_s3_server

STAGES = (0, 50, 90, 99, 100)
CLAIM_ROWS = 32
GOALS = {
    "claim_ms": 20,
    "noop_s": 1.0,
    "dry_run_s": 1.0,
    "page_ms": 30,
    "api_list_ms": 20,
    "admin_list_ms": 200,
}
KEYS = {"access_key": "veza-bench", "secret_key": "veza-bench-secret"}
BUCKET = "veza-scale"
SIGKILL_ROWS = 3_000
SIGKILL_SIZE = 64 * 1024

# Every row's 64 bytes are its id's 16 bytes four times: the SHA-256, MD5
# (the ETag) and name follow in SQL, and the files can be written to match.
BUILD_ROWS = """
INSERT INTO tracks_track (
    id, owner_id, title, visibility, original_filename, mime_type,
    size_bytes, sha256, duration_seconds, storage_backend, storage_key,
    storage_etag, storage_verified_at, migration_state, migration_target,
    migration_runner, migration_lease_until, migration_error,
    taken_down_at, takedown_reason, created_at, updated_at
)
SELECT
    r.id, (%(owners)s::int[])[1 + r.n %% cardinality(%(owners)s::int[])],
    'Track ' || r.n,
    CASE WHEN abs(hashtext(r.n::text)) %% 2 = 0 THEN 'public' ELSE 'private' END,
    't.wav', 'audio/wav',
    64, encode(sha256(r.body), 'hex'), 1.0, 'local',
    'tracks/' || r.id::text || '/' || encode(sha256(r.body), 'hex') || '.wav',
    '', NULL, '', '', '', NULL, '', NULL, '',
    now() - make_interval(secs => r.n), now()
FROM (
    SELECT n, md5('veza-scale-' || n)::uuid AS id,
           decode(repeat(replace(md5('veza-scale-' || n), '-', ''), 4), 'hex') AS body
    FROM generate_series(1, %(rows)s) AS n
) AS r
"""

# The listeners who own the rows besides `bench` (1,000 owners in all).
MAKE_OWNERS = """
INSERT INTO auth_user (password, is_superuser, username, first_name, last_name,
                       email, is_staff, is_active, date_joined)
SELECT '!', false, 'listener' || n, '', '', '', false, true, now()
FROM generate_series(1, %(count)s) AS n
RETURNING id
"""
OWNERS = 1_000

# Move the next rows, in id order, to S3, as a run leaves them.
MOVE_ROWS = """
UPDATE tracks_track SET storage_backend = 's3', migration_state = 'flipped',
    storage_verified_at = now(),
    storage_etag = md5(decode(repeat(replace(id::text, '-', ''), 4), 'hex'))
WHERE id IN (
    SELECT id FROM tracks_track WHERE storage_backend = 'local'
    ORDER BY id LIMIT %(count)s
)
"""

CLAIM = """
import json, statistics, time
from django.db import connection
from django.test.utils import CaptureQueriesContext
from tracks.migration.claims import Claimer
from tracks.models import Track
times = []
for attempt in range(8):
    claimer = Claimer(runner=f"bench:{attempt}", target="s3", lease_seconds=30)
    with CaptureQueriesContext(connection) as captured:
        started = time.perf_counter()
        claimed = claimer.claim(%(rows)d)
        times.append((time.perf_counter() - started) * 1000)
    Track.objects.filter(pk__in=[t.pk for t in claimed]).update(
        migration_state="", migration_runner="", migration_lease_until=None,
        migration_target="",
    )
select = next(q["sql"] for q in captured.captured_queries if "SKIP LOCKED" in q["sql"])
with connection.cursor() as cursor:
    cursor.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + select)
    plan = [r[0] for r in cursor.fetchall()]
print(json.dumps({"claimed": len(claimed), "ms": times[1:], "plan": plan}))
"""

SETUP_STAFF = """
from django.contrib.auth import get_user_model
User = get_user_model()
if not User.objects.filter(username="staff").exists():
    User.objects.create_superuser("staff", "staff@example.com", "staff-pass-123")
"""


def sql(db_url: str, statement: str, params: dict[str, Any] | None = None) -> int:
    with psycopg.connect(db_url, autocommit=True) as conn:
        cursor = conn.execute(statement, params or {})
        return cursor.rowcount


def scalar(conn: psycopg.Connection[Any], statement: str, *params: Any) -> Any:
    row = conn.execute(statement, params or None).fetchone()
    if row is None:
        raise RuntimeError(f"no row from {statement}")
    return row[0]


def timed_process(cmd: list[str], env: dict[str, str]) -> tuple[float, str, int]:
    """Wall seconds, stdout and peak RSS (KiB) of one command."""
    started = time.perf_counter()
    result = subprocess.run(
        ["/usr/bin/time", "-f", "%M", *cmd],
        env=env,
        cwd=harness.ROOT,
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    seconds = time.perf_counter() - started
    if result.returncode:
        raise RuntimeError(
            f"{cmd[2:5]} exited {result.returncode}: {result.stderr[-2000:]}"
        )
    rss = int(result.stderr.strip().splitlines()[-1])
    return seconds, result.stdout, rss


def manage_cmd(*args: str) -> list[str]:
    return [sys.executable, str(harness.ROOT / "manage.py"), *args]


def median_of(
    cmd: list[str], env: dict[str, str], runs: int
) -> tuple[float, list[float], str]:
    times = []
    out = ""
    for _ in range(runs):
        seconds, out, _ = timed_process(cmd, env)
        times.append(seconds)
    return harness.median(times), times, out


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def staff_session(server: harness.Server) -> requests.Session:
    session = requests.Session()
    login = f"{server.url}/admin/login/"
    page = session.get(login, timeout=10)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    if token is None:
        raise RuntimeError("no CSRF token on the admin login page")
    answer = session.post(
        login,
        data={
            "username": "staff",
            "password": "staff-pass-123",
            "csrfmiddlewaretoken": token.group(1),
            "next": "/admin/",
        },
        headers={"Referer": login},
        timeout=10,
    )
    answer.raise_for_status()
    return session


def latencies(
    session: requests.Session,
    server: harness.Server,
    paths: list[tuple[str, str]],
    requests_per_url: int,
) -> dict[str, Any]:
    """Median and p95 milliseconds of GETs of each path, after 5 of warm-up."""
    results: dict[str, Any] = {}
    for name, path in paths:
        times = []
        for i in range(requests_per_url + 5):
            started = time.perf_counter()
            response = session.get(server.url + path, timeout=60)
            elapsed = (time.perf_counter() - started) * 1000
            response.raise_for_status()
            if i >= 5:  # warm-up: the workers' first requests
                times.append(elapsed)
        results[name] = {
            "median_ms": round(harness.median(times), 2),
            "p95_ms": round(percentile(times, 0.95), 2),
        }
    return results


def admin_latency(server: harness.Server, requests_per_url: int) -> dict[str, Any]:
    session = staff_session(server)
    results = latencies(
        session,
        server,
        [
            ("page", "/admin/tracks/track/storage/"),
            ("poll", "/admin/tracks/track/storage/status.json"),
        ],
        requests_per_url,
    )
    status = session.get(
        server.url + "/admin/tracks/track/storage/status.json", timeout=10
    )
    results["overview"] = status.json()["overview"]["backends"]
    return results


def reads_at_scale(
    server: harness.Server,
    db_url: str,
    user: dict[str, str],
    requests_per_url: int,
    depth: int,
) -> dict[str, Any]:
    """What a listener's client and a staff member meet at this size: the API
    list (first page, and a page `depth` rows deep) and the admin's track
    changelist (plain, filtered by backend, searched)."""
    with psycopg.connect(db_url) as conn:
        # The cursor of the page that starts `depth` rows into the list, as
        # the API writes it (following `next` depth/50 times gets the same).
        deep_position = scalar(
            conn,
            "SELECT created_at FROM tracks_track "
            "WHERE visibility = 'public' OR owner_id = %s "
            "ORDER BY created_at DESC OFFSET %s LIMIT 1",
            int(user["user_id"]),
            depth,
        )
    cursor = base64.b64encode(
        urllib.parse.urlencode({"p": str(deep_position)}).encode()
    ).decode()
    api = requests.Session()
    api.headers["Authorization"] = f"Token {user['token']}"
    results = latencies(
        api,
        server,
        [
            ("api_first_page", "/api/v1/tracks/"),
            (
                "api_deep_page",
                "/api/v1/tracks/?" + urllib.parse.urlencode({"cursor": cursor}),
            ),
        ],
        requests_per_url,
    )
    deep = api.get(server.url + "/api/v1/tracks/", params={"cursor": cursor})
    results["api_deep_page_rows"] = len(deep.json()["results"])
    staff = staff_session(server)
    results.update(
        latencies(
            staff,
            server,
            [
                ("admin_changelist", "/admin/tracks/track/"),
                ("admin_by_backend", "/admin/tracks/track/?storage_backend__exact=s3"),
                ("admin_search_owner", "/admin/tracks/track/?q=listener500"),
                ("admin_search_title", "/admin/tracks/track/?q=Track+424242"),
            ],
            max(10, requests_per_url // 5),
        )
    )
    return results


def write_objects(media: Path, bucket: Path, db_url: str, on_s3: int) -> int:
    """The 64-byte file of every row under MEDIA_ROOT; the first `on_s3`
    rows (by id) also as objects on the S3 server's disk (hard links)."""
    written = 0
    with psycopg.connect(db_url) as conn, conn.cursor(name="keys") as cursor:
        cursor.itersize = 20_000
        cursor.execute("SELECT id, storage_key FROM tracks_track ORDER BY id")
        for track_id, key in cursor:
            path = media / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(track_id.bytes * 4)
            if written < on_s3:
                (bucket / key).parent.mkdir(parents=True)
                os.link(path, bucket / key)
            written += 1
    return written


def sigkill_takeover(
    env: dict[str, str], db_url: str, media: Path, owner: int
) -> dict[str, Any]:
    """Kill a runner mid-run; time how long until a second takes its rows over."""
    rows = []
    for n in range(SIGKILL_ROWS):
        track_id = uuid.uuid4()
        data = os.urandom(SIGKILL_SIZE)
        sha = hashlib.sha256(data).hexdigest()
        key = f"tracks/{track_id}/{sha}.wav"
        path = media / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        rows.append((track_id, owner, f"kill {n}", SIGKILL_SIZE, sha, key))
    with psycopg.connect(db_url, autocommit=True) as conn, conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO tracks_track (id, owner_id, title, visibility, "
            "original_filename, mime_type, size_bytes, sha256, duration_seconds, "
            "storage_backend, storage_key, storage_etag, migration_state, "
            "migration_target, migration_runner, migration_error, takedown_reason, "
            "created_at, updated_at) VALUES (%s, %s, %s, 'public', 't.wav', "
            "'audio/wav', %s, %s, 1.0, 'local', %s, '', '', '', '', '', '', "
            "now(), now())",
            rows,
        )
    harness.manage(env, "storage_tally", "--recount")
    cmd = manage_cmd("migrate_storage", "--to", "s3", "--workers", "8", "--json")
    first = subprocess.Popen(
        cmd,
        env=env,
        cwd=harness.ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    started = time.perf_counter()
    try:
        with psycopg.connect(db_url, autocommit=True) as conn:
            while True:
                moved = scalar(
                    conn,
                    "SELECT count(*) FROM tracks_track WHERE title LIKE 'kill %%' "
                    "AND storage_backend = 's3'",
                )
                if moved >= SIGKILL_ROWS // 5 or first.poll() is not None:
                    break
                time.sleep(0.02)
            first.send_signal(signal.SIGKILL)
            first.wait()
            killed_at = time.perf_counter()
            held = [
                r[0]
                for r in conn.execute(
                    "SELECT id FROM tracks_track WHERE storage_backend = 'local' "
                    "AND migration_state IN ('claimed', 'copying', 'verified') "
                    "AND migration_lease_until > now()"
                ).fetchall()
            ]
            second = subprocess.Popen(
                cmd,
                env=env,
                cwd=harness.ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            taken_over = None
            while second.poll() is None:
                if held and taken_over is None:
                    flipped = scalar(
                        conn,
                        "SELECT count(*) FROM tracks_track WHERE id = ANY(%s) "
                        "AND storage_backend = 's3'",
                        held,
                    )
                    if flipped == len(held):
                        taken_over = time.perf_counter() - killed_at
                time.sleep(0.05)
            out = second.stdout.read() if second.stdout else ""
            finished = time.perf_counter() - killed_at
            if taken_over is None:
                taken_over = finished
            left = scalar(
                conn,
                "SELECT count(*) FROM tracks_track WHERE storage_backend = 'local'",
            )
    finally:
        for proc in (first,):
            if proc.poll() is None:
                proc.kill()
    summary = json.loads(out)
    return {
        "moved_before_kill": moved,
        "held_at_kill": len(held),
        "takeover_seconds": round(taken_over, 2),
        "second_run_seconds": round(finished, 2),
        "second_run_moved": summary["moved"] + summary["already_there"],
        "left_on_local": left,
        "first_run_seconds_to_kill": round(killed_at - started, 2),
    }


def verify_at_scale(
    env: dict[str, str], db_url: str, var: Path, on_s3: int
) -> dict[str, Any]:
    """`--verify-only` over every row: `on_s3` rows on S3 (objects on a fresh
    `rclone serve s3`), the rest on local disk (files under MEDIA_ROOT).

    Not a million objects on S3: `rclone serve s3` lists a bucket ever more
    slowly as it grows (a listing of 1,000,000 objects in 1,000,000
    directories had not finished after 35 minutes of its CPU), so the S3 part
    is `on_s3` objects and the local part the rest, both checked against the
    whole table.
    """
    sql(db_url, "DELETE FROM tracks_track WHERE title LIKE 'kill %%'")
    sql(
        db_url,
        "UPDATE tracks_track SET storage_backend = CASE WHEN id IN (SELECT id FROM "
        "tracks_track ORDER BY id LIMIT %(on_s3)s) THEN 's3' ELSE 'local' END",
        {"on_s3": on_s3},
    )
    sql(db_url, "VACUUM ANALYZE tracks_track")
    media = var / "verify-media"
    # A server of its own, its disk filled before its first request:
    # `rclone serve s3` caches directory listings.
    server = start_s3_server(KEYS["access_key"], KEYS["secret_key"])
    try:
        (server.root / BUCKET).mkdir()
        env = {
            **env,
            "AWS_S3_ENDPOINT_URL": server.endpoint,
            "VEZA_MEDIA_ROOT": str(media),
        }
        harness.manage(env, "storage_tally", "--recount")
        started = time.perf_counter()
        written = write_objects(media, server.root / BUCKET, db_url, on_s3)
        print(
            f"wrote {written:,} files ({on_s3:,} also as objects) in "
            f"{time.perf_counter() - started:.0f} s",
            flush=True,
        )
        verify = manage_cmd("migrate_storage", "--verify-only", "--json")
        cold, cold_out, _ = timed_process([*verify, "--to", "s3"], env)
        rclone_env = {
            **env,
            "RCLONE_CONFIG_BENCH_TYPE": "s3",
            "RCLONE_CONFIG_BENCH_PROVIDER": "Other",
            "RCLONE_CONFIG_BENCH_ENDPOINT": server.endpoint,
            "RCLONE_CONFIG_BENCH_ACCESS_KEY_ID": KEYS["access_key"],
            "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY": KEYS["secret_key"],
        }
        rclone = str(harness.VENV_BIN / "rclone")
        lsf, lsf_out, lsf_rss = timed_process(
            [rclone, "--config", "/dev/null", "lsf", "-R", "--files-only",
             "--format", "psh", f"bench:{BUCKET}/tracks"],
            rclone_env,
        )  # fmt: skip
        # Again, now that the server has hashed every file (real S3 and MinIO
        # store ETags), beside the lister above.
        warm, warm_out, warm_rss = timed_process([*verify, "--to", "s3"], env)
        local, local_out, local_rss = timed_process([*verify, "--to", "local"], env)
    finally:
        server.stop()
    reports = {
        "cold": json.loads(cold_out),
        "warm": json.loads(warm_out),
        "local": json.loads(local_out),
    }
    lines = lsf_out.count("\n")
    return {
        "rows": reports["warm"]["checked"] + reports["local"]["checked"],
        "clean": all(r["clean"] for r in reports.values()),
        "s3_objects": reports["warm"]["listed"],
        "s3_cold_seconds": round(cold, 2),
        "s3_cold_objects_per_second": round(reports["cold"]["listed"] / cold),
        "rclone_lsf_seconds": round(lsf, 2),
        "rclone_lsf_objects_per_second": round(lines / lsf),
        "rclone_lsf_rss_mib": round(lsf_rss / 1024, 1),
        "s3_seconds": round(warm, 2),
        "s3_objects_per_second": round(reports["warm"]["listed"] / warm),
        "s3_peak_rss_mib": round(warm_rss / 1024, 1),
        "local_objects": reports["local"]["listed"],
        "local_seconds": round(local, 2),
        "objects_per_second": round(reports["local"]["listed"] / local),
        "local_peak_rss_mib": round(local_rss / 1024, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5, help="runs per command timing")
    parser.add_argument("--requests", type=int, default=50, help="per admin URL")
    parser.add_argument(
        "--skip-objects", action="store_true", help="skip the verify-only part"
    )
    parser.add_argument(
        "--s3-objects",
        type=int,
        default=100_000,
        help="rows on S3 (as objects) in the verify-only part; the rest local",
    )
    args = parser.parse_args()
    if not harness.postgres_available():
        print("PostgreSQL is not reachable on 127.0.0.1:5432", file=sys.stderr)
        return 1
    print(harness.load_note(), flush=True)
    results: dict[str, Any] = {"rows": args.rows, "stages": {}}
    with contextlib.ExitStack() as stack:
        var = stack.enter_context(harness.temp_dir("veza-bench-scale-"))
        db_url = stack.enter_context(harness.postgres_database("veza_bench_scale"))
        server = start_s3_server(KEYS["access_key"], KEYS["secret_key"])
        stack.callback(server.stop)
        (server.root / BUCKET).mkdir()
        media = var / "media"
        env = harness.base_env(
            VEZA_VAR_DIR=str(var / "var"),
            VEZA_MEDIA_ROOT=str(media),
            DATABASE_URL=db_url,
            TRACK_STORAGE_BACKEND="local",
            AWS_S3_ENABLED="true",
            AWS_STORAGE_BUCKET_NAME=BUCKET,
            AWS_ACCESS_KEY_ID=KEYS["access_key"],
            AWS_SECRET_ACCESS_KEY=KEYS["secret_key"],
            AWS_S3_ENDPOINT_URL=server.endpoint,
            HLS_PACKAGE_ON_UPLOAD="false",
        )
        user = harness.migrate_and_make_user(env)
        harness.manage(env, "shell", "-c", SETUP_STAFF)
        with psycopg.connect(db_url, autocommit=True) as conn:
            listeners = conn.execute(MAKE_OWNERS, {"count": OWNERS - 1}).fetchall()
        owners = [int(user["user_id"]), *(row[0] for row in listeners)]
        started = time.perf_counter()
        built = sql(db_url, BUILD_ROWS, {"owners": owners, "rows": args.rows})
        results["build_seconds"] = round(time.perf_counter() - started, 2)
        sql(db_url, "VACUUM ANALYZE tracks_track")
        recount, _, _ = timed_process(manage_cmd("storage_tally", "--recount"), env)
        results["recount_seconds"] = round(recount, 2)
        print(
            f"built {built:,} rows in {results['build_seconds']} s; tallies "
            f"recounted in {recount:.2f} s (once, after the bulk insert)",
            flush=True,
        )
        moved = 0
        for stage in STAGES:
            target = args.rows * stage // 100
            if target > moved:
                sql(db_url, MOVE_ROWS, {"count": target - moved})
                moved = target
                sql(db_url, "VACUUM ANALYZE tracks_track")
                harness.manage(env, "storage_tally", "--recount")
            row: dict[str, Any] = {}
            if stage < 100:
                out = harness.manage(env, "shell", "-c", CLAIM % {"rows": CLAIM_ROWS})
                claim = json.loads(out.strip().splitlines()[-1])
                row["claim_ms"] = round(harness.median(claim["ms"]), 2)
                row["claim_ms_max"] = round(max(claim["ms"]), 2)
                row["claim_plan"] = claim["plan"]
            dry, _, out = median_of(
                manage_cmd("migrate_storage", "--to", "s3", "--dry-run", "--json"),
                env,
                args.runs,
            )
            row["dry_run_s"] = round(dry, 3)
            row["dry_run_rows"] = json.loads(out)["rows"]
            if stage == 100:
                noop, noop_runs, out = median_of(
                    manage_cmd("migrate_storage", "--to", "s3", "--json"),
                    env,
                    args.runs,
                )
                summary = json.loads(out)
                row["noop_s"] = round(noop, 3)
                row["noop_runs"] = [round(t, 3) for t in noop_runs]
                row["noop_summary"] = {
                    k: summary[k] for k in ("selected", "on_target", "status")
                }
            if stage == 90:
                with harness.gunicorn("veza.wsgi", env, name="scale-admin") as web:
                    row["admin"] = admin_latency(web, args.requests)
                    results["reads"] = reads_at_scale(
                        web, db_url, user, args.requests, min(250_000, args.rows // 4)
                    )
                print("reads: " + json.dumps(results["reads"]), flush=True)
            results["stages"][stage] = row
            print(
                f"{stage:3d} % moved: "
                + json.dumps({k: v for k, v in row.items() if k != "claim_plan"}),
                flush=True,
            )
        print(
            "claim plan at 90 %:\n  "
            + "\n  ".join(results["stages"][90]["claim_plan"]),
            flush=True,
        )
        results["sigkill"] = sigkill_takeover(env, db_url, media, int(user["user_id"]))
        print("SIGKILL takeover: " + json.dumps(results["sigkill"]), flush=True)
        if not args.skip_objects:
            results["verify"] = verify_at_scale(env, db_url, var, args.s3_objects)
            print("verify-only: " + json.dumps(results["verify"]), flush=True)
    report_goals(results)
    harness.OUT.mkdir(parents=True, exist_ok=True)
    harness.write_results("bench_scale", results)
    print(harness.load_note())
    return 0


def report_goals(results: dict[str, Any]) -> None:
    stages = results["stages"]
    claims = {s: r["claim_ms"] for s, r in stages.items() if "claim_ms" in r}
    worst_claim = max(claims.values())
    worst_dry_run = max(r["dry_run_s"] for r in stages.values())
    noop = stages[100]["noop_s"]
    admin = stages[90]["admin"]
    page, poll = admin["page"]["median_ms"], admin["poll"]["median_ms"]
    takeover = results["sigkill"]["takeover_seconds"]
    lines = [
        ("claim of 32 rows, worst stage", f"{worst_claim:.2f} ms",
         worst_claim < GOALS["claim_ms"]),
        ("no-op re-run", f"{noop:.3f} s", noop < GOALS["noop_s"]),
        ("--dry-run, worst stage", f"{worst_dry_run:.3f} s",
         worst_dry_run < GOALS["dry_run_s"]),
        ("admin page (median)", f"{page:.1f} ms", page < GOALS["page_ms"]),
        ("status.json poll (median)", f"{poll:.1f} ms", poll < GOALS["page_ms"]),
        ("SIGKILL takeover", f"{takeover:.1f} s", takeover < 20),
    ]  # fmt: skip
    reads = results.get("reads", {})
    for name, goal in (
        ("api_first_page", "api_list_ms"),
        ("api_deep_page", "api_list_ms"),
        ("admin_changelist", "admin_list_ms"),
        ("admin_by_backend", "admin_list_ms"),
        ("admin_search_owner", "admin_list_ms"),
        ("admin_search_title", "admin_list_ms"),
    ):
        if name in reads:
            ms = reads[name]["median_ms"]
            lines.append((name.replace("_", " "), f"{ms:.1f} ms", ms < GOALS[goal]))
    if "verify" in results:
        verify = results["verify"]
        for name, rate in (
            ("--verify-only, local files", verify["objects_per_second"]),
            ("--verify-only, S3 (hashes cached)", verify["s3_objects_per_second"]),
        ):
            lines.append((name, f"{rate:,} objects/s", rate >= 5000))
    by_stage = ", ".join(f"{s} %: {v:.2f} ms" for s, v in claims.items())
    print(f"\n{results['rows']:,} rows; claims by stage: {by_stage}")
    harness.print_table(
        ["figure", "measured", "goal"],
        [[name, value, "OK" if ok else "MISSED"] for name, value, ok in lines],
    )


if __name__ == "__main__":
    sys.exit(main())
