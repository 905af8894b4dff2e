"""HLS serving benchmark: segment GETs through the origin beside static nginx.

Sets up a throwaway Veza (fresh database and var dir, `migrate`, a user),
uploads a seeded music-like FLAC (bench_hls_package.make_source) through the
API and packages it (`hls_package_request` + `hls_package_build`, local
storage) in `manage.py shell`. Then loads one media segment of the 128k rung
(the one nearest 97 KB: a byte range of the rung's one file, `Range:
bytes=<offset>-<end>` sent with every request and answered 206, as players
read a version 3 package; a file of its own in a version 2 package) with the
same load generator (`wrk -t2 -c32 -d10s`) through:

* (a) **nginx static**: a plain `location /hls/ { root <media>; }`, the
  reference;
* (c) **nginx mode**: the project's nginx config (infra/nginx/veza.conf,
  rewritten only for ports and paths) in front of gunicorn: nginx asks Django
  (`auth_request` to /origin/hls-auth) once per directory token, caches the
  answer and serves the files itself; goal >= 0.7x (a);
* (b) **direct mode**: gunicorn + veza.wsgi alone, Python serving every
  request (token check, cached package lookup, FileResponse). Several
  worker setups are probed briefly and the best one is measured.

(a) and (c) share one nginx (same workers, same settings) and alternate.
The same token URL is used for (b) and (c), the plain path for (a). Each
target is fetched once first and checked (200, the file's bytes); nginx
mode is also checked to refuse a tampered token, and the number of auth
requests that reach Django during its load is counted (gunicorn access log).

    .venv/bin/python bench/bench_hls_serve.py [--duration 10] [--connections 32]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import harness
from bench_hls_package import make_source
from bench_stream_url import parse_wrk
from bench_upload import upload

GOAL_NGINX_MODE = 0.7
TARGET_SEGMENT_BYTES = 97_000
RUNG = "128k"
NGINX_CONF = harness.ROOT / "infra" / "nginx" / "veza.conf"
# Where veza.conf expects the app's var dir, and nginx's own state.
CONF_VAR_DIR = "/srv/veza/var/"
# Gunicorn setups probed for the direct mode: (worker class, workers, threads).
DIRECT_SETUPS = [("sync", 2, 1), ("sync", 4, 1), ("gthread", 2, 4)]

PACKAGE = """
import json, time
from streaming.models import HlsPackage
from streaming.playback import hls_origin_directory
from streaming.services import hls_package_build, hls_package_request
from tracks.models import Track
track = Track.objects.get(pk="{track_id}")
package = hls_package_build(package_id=hls_package_request(track=track).pk)
assert package.status == "ready", (package.status, package.error)
expires = int(time.time()) + 24 * 3600
print(json.dumps({{
    "content_hash": package.content_hash,
    "directory": package.directory,
    "files": package.files,
    "renditions": package.renditions,
    "origin_directory": hls_origin_directory(
        content_hash=package.content_hash,
        expires=expires,
        shared=package.track.visibility in ("public", "unlisted"),
    ),
}}))
"""


# --- load ---------------------------------------------------------------------


@dataclass
class Load:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    transfer_mb_s: float  # wrk's Transfer/sec: bodies and headers


_SIZE = {"B": 1, "KB": 2**10, "MB": 2**20, "GB": 2**30}


def wrk(
    url: str, *, threads: int, connections: int, duration: float, range_header: str
) -> Load:
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration}s",
        "--latency",
        "--timeout",
        "5s",
        *(["-H", f"Range: {range_header}"] if range_header else []),
        url,
    ]
    out = subprocess.run(
        cmd, capture_output=True, text=True, check=True, timeout=duration + 30
    ).stdout
    base = parse_wrk(out)
    transfer = re.search(r"Transfer/sec:\s+([\d.]+)(B|KB|MB|GB)", out)
    mb_s = float(transfer[1]) * _SIZE[transfer[2]] / 1e6 if transfer else 0.0
    return Load(base.rps, base.p50_ms, base.p99_ms, base.errors, mb_s)


def fetch(url: str, range_header: str = "") -> tuple[int, bytes, dict[str, str]]:
    request = urllib.request.Request(
        url, headers={"Range": range_header} if range_header else {}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def verify(url: str, package: Package) -> str:
    """One GET by hand: 206 and the segment's bytes (200 for a file of its
    own); returns its Content-Type."""
    status, body, headers = fetch(url, package.range_header)
    wanted = 206 if package.range_header else 200
    if status != wanted or body != package.expected:
        raise RuntimeError(
            f"{url}: status {status}, {len(body)} bytes (expected {wanted}, "
            f"{len(package.expected)} bytes): {body[:300]!r}"
        )
    return headers.get("Content-Type", "?")


# --- setup --------------------------------------------------------------------


@dataclass
class Package:
    content_hash: str
    origin_path: str  # the token URL path of the segment's file
    static_path: str  # the same file as a plain path under the media root
    file: Path
    size: int  # of the segment
    # "bytes=<first>-<last>" of the segment in its rung's file ("" when the
    # segment is a file of its own: a version 2 package).
    range_header: str
    expected: bytes


def make_package(
    env: dict[str, str], token: str, media: Path, tmp: Path, seconds: int
) -> Package:
    source = tmp / "source.flac"
    make_source(source, seconds)
    with harness.gunicorn("veza.wsgi", env, name="hls-serve-setup") as server:
        _, answer = upload(server.url, token, source)
    out = harness.manage(
        env, "shell", "-c", PACKAGE.format(track_id=answer["id"]), timeout=600
    )
    info = json.loads(out.strip().splitlines()[-1])
    # A media segment of the rung, the one nearest the target size: a range
    # of the rung's one file, or a file of its own.
    rendition = next(r for r in info["renditions"] if r["name"] == RUNG)
    name, _duration, size, *offset = min(
        rendition["segments"], key=lambda s: abs(s[2] - TARGET_SEGMENT_BYTES)
    )
    file = media / info["directory"] / RUNG / name
    if not file.exists():
        raise RuntimeError(f"{file} is not on disk (local storage expected)")
    data = file.read_bytes()
    first = offset[0] if offset else 0
    return Package(
        content_hash=info["content_hash"],
        origin_path=info["origin_directory"] + f"{RUNG}/{name}",
        static_path=f"/{info['directory']}{RUNG}/{name}",
        file=file,
        size=size,
        range_header=f"bytes={first}-{first + size - 1}" if offset else "",
        expected=data[first : first + size],
    )


# --- nginx --------------------------------------------------------------------

NGINX_MAIN = """\
# Generated by bench/bench_hls_serve.py; deleted after the run.
{user}
worker_processes auto;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{
    worker_connections 1024;
}}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;

    # (a) static: the package files under a plain root.
    server {{
        listen 127.0.0.1:{static_port};
        location = /nginx-ready {{
            return 204;
        }}
        location /hls/ {{
            root {media};
            # As veza.conf: tcp_nopush stalls a range's end ~40 ms.
            tcp_nopush off;
        }}
    }}

    # (c) nginx mode: infra/nginx/veza.conf, ports and paths rewritten.
{veza}
}}
"""


def veza_conf_for_bench(
    text: str, *, port: int, http_port: int, ws_port: int, var: Path, prefix: Path
) -> str:
    """infra/nginx/veza.conf with only its ports and file system paths changed."""
    replacements = [
        (r"listen\s+80\s*;", f"listen 127.0.0.1:{port};"),
        (r"listen\s+\[::\]:80\s*;", ""),
        (r"server\s+127\.0\.0\.1:8000\s*;", f"server 127.0.0.1:{http_port};"),
        (r"server\s+127\.0\.0\.1:8001\s*;", f"server 127.0.0.1:{ws_port};"),
    ]
    for pattern, new in replacements:
        text = re.sub(pattern, new, text)
    text = text.replace(CONF_VAR_DIR, f"{var}/")
    # nginx's own state (temp bodies, caches) goes under the bench prefix.
    text = re.sub(
        r"/var/(lib|cache|log)/nginx(?=[/;\s])",
        lambda m: f"{prefix}/{m[1]}",
        text,
    )
    for line in text.splitlines():
        paths = re.findall(r"(?<![\w$.])/(?:srv|var)/\S*", line.split("#")[0])
        if paths:
            raise RuntimeError(f"veza.conf path not rewritten for the bench: {line}")
    return "\n".join("    " + line if line else "" for line in text.splitlines())


@dataclass
class Nginx:
    static_url: str
    veza_url: str


@contextlib.contextmanager
def nginx(prefix: Path, var: Path, http_port: int) -> Iterator[Nginx]:
    static_port, veza_port, ws_port = (
        harness.free_port(),
        harness.free_port(),
        harness.free_port(),
    )
    for sub in ("tmp", "lib", "cache", "log"):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
    veza = veza_conf_for_bench(
        NGINX_CONF.read_text(),
        port=veza_port,
        http_port=http_port,
        ws_port=ws_port,
        var=var,
        prefix=prefix,
    )
    conf = prefix / "nginx.conf"
    conf.write_text(
        NGINX_MAIN.format(
            # As root, nginx's workers would run as nobody, who cannot read
            # the private temporary directory.
            user="user root;" if os.geteuid() == 0 else "",
            prefix=prefix,
            static_port=static_port,
            media=var / "media",
            veza=veza,
        )
    )
    cmd = ["nginx", "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")]
    check = subprocess.run(
        [*cmd, "-t"], capture_output=True, text=True, check=False, timeout=30
    )
    if check.returncode:
        raise RuntimeError(f"nginx -t failed:\n{check.stderr}\n(config: {conf})")
    log = (prefix / "nginx.out").open("wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        harness.wait_for_http(static_port, "/nginx-ready", proc)
        harness.wait_for_http(veza_port, "/healthz", proc)
        yield Nginx(f"http://127.0.0.1:{static_port}", f"http://127.0.0.1:{veza_port}")
    finally:
        harness.stop_process(proc)
        log.close()
        errors = (prefix / "error.log").read_text(errors="replace").strip()
        if errors:
            print("  nginx error.log (last lines):")
            for line in errors.splitlines()[-5:]:
                print(f"    {line}")


# --- the benchmark ------------------------------------------------------------

STATIC = "(a) nginx static"
NGINX_MODE = "(c) nginx mode: auth_request once per token + nginx"
# While veza.conf has no auth_request block, the origin URL falls through to
# Django, which answers X-Accel-Redirect for every segment.
NGINX_ACCEL = "(c*) nginx + X-Accel-Redirect from Django per request"
DIRECT = "(b) direct: Django serves every request"


def measure(
    label: str, url: str, args: argparse.Namespace, range_header: str
) -> list[Load]:
    """A 2 s warm-up, then `repeats` runs."""
    wrk(
        url,
        threads=args.threads,
        connections=args.connections,
        duration=2,
        range_header=range_header,
    )
    runs = []
    for _ in range(args.repeats):
        r = wrk(
            url,
            threads=args.threads,
            connections=args.connections,
            duration=args.duration,
            range_header=range_header,
        )
        runs.append(r)
        print(
            f"  {label}: {r.rps:,.0f} req/s, p99 {r.p99_ms:.2f} ms, errors {r.errors}"
        )
    return runs


def logged_requests(log: Path) -> list[str]:
    """What gunicorn has logged so far (its access log), as "path status"."""
    if not log.exists():
        return []
    out = []
    for line in log.read_text().splitlines():
        if m := re.search(r'"[A-Z]+ (\S+) HTTP/[\d.]+" (\d+)', line):
            parts = m[1].split("?")[0].split("/")
            # /origin/hls/<expires>/<token>/... -> /origin/hls/...
            path = "/".join(parts[:3]) + ("/..." if len(parts) > 3 else "")
            out.append(f"{path} {m[2]}")
    return out


def run(args: argparse.Namespace) -> dict[str, object]:
    for tool in ("wrk", "nginx"):
        if not shutil.which(tool):
            print(f"SKIPPED bench_hls_serve: {tool} is not installed")
            return {"skipped": f"{tool} missing"}
    results: dict[str, list[Load]] = {}
    notes: dict[str, object] = {}
    django_requests: list[dict[str, int]] = []
    notes["django_requests_during_load"] = django_requests
    print(harness.load_note())
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(harness.temp_dir("veza-bench-hls-serve-"))
        var = tmp / "var"
        media = var / "media"
        db_url = stack.enter_context(harness.database("veza_bench_hls", tmp))
        common = {
            "VEZA_VAR_DIR": str(var),
            "VEZA_MEDIA_ROOT": str(media),
            "DATABASE_URL": db_url,
            "TRACK_STORAGE_BACKEND": "local",
            # Packaged by hand below, not by a task.
            "HLS_PACKAGE_ON_UPLOAD": "false",
        }
        env = harness.base_env(**common)
        token = harness.migrate_and_make_user(env)["token"]
        started = time.perf_counter()
        package = make_package(env, token, media, tmp, args.seconds)
        # Every load: the same generator settings and the segment's Range.
        load = functools.partial(
            wrk,
            threads=args.threads,
            connections=args.connections,
            range_header=package.range_header,
        )
        print(
            f"Packaged {args.seconds} s in {time.perf_counter() - started:.1f} s; "
            f"segment {RUNG}/{package.file.name} {package.range_header or '(whole)'}: "
            f"{package.size:,} bytes"
        )
        notes["segment_bytes"] = package.size

        mode_label = NGINX_MODE
        if "auth_request" not in NGINX_CONF.read_text():
            mode_label = NGINX_ACCEL
            print(
                f"WARNING: {NGINX_CONF.relative_to(harness.ROOT)} has no auth_request "
                f"block: measuring {NGINX_ACCEL} instead of nginx mode"
            )
        # (a) and (c): one nginx, with gunicorn (production settings,
        # X-Accel-Redirect on) behind it for the auth requests.
        access_log = tmp / "auth-access.log"
        nginx_env = harness.base_env(
            **common,
            VEZA_ACCEL_REDIRECT_PREFIX="/_protected",
            GUNICORN_ACCESSLOG=str(access_log),
        )
        with contextlib.ExitStack() as servers:
            app = servers.enter_context(
                harness.gunicorn("veza.wsgi", nginx_env, name="hls-serve-nginx-app")
            )
            proxy = servers.enter_context(nginx(tmp / "nginx", var, app.port))
            static_url = proxy.static_url + package.static_path
            mode_url = proxy.veza_url + package.origin_path
            for label, url in (("(a)", static_url), ("(c)", mode_url)):
                kind = verify(url, package)
                print(f"  checked {label}: the segment's bytes, {kind}")
            bad = mode_url.replace(
                package.origin_path.split("/")[4], "A" * 43, 1
            )  # a token of the right shape, but wrong
            status = fetch(bad)[0]
            if status not in (403, 404):
                raise RuntimeError(f"nginx mode answered {status} to a forged token")
            print(f"  checked (c): a forged token gets {status}")
            for url in (static_url, mode_url):
                load(url, duration=2)
            for _ in range(args.repeats):
                for label, url in ((STATIC, static_url), (mode_label, mode_url)):
                    before = len(logged_requests(access_log))
                    r = load(url, duration=args.duration)
                    results.setdefault(label, []).append(r)
                    extra = ""
                    if label == mode_label:
                        seen = dict(Counter(logged_requests(access_log)[before:]))
                        django_requests.append(seen)
                        extra = f", requests reaching Django: {seen or 0}"
                    print(
                        f"  {label}: {r.rps:,.0f} req/s, p99 {r.p99_ms:.2f} ms, "
                        f"errors {r.errors}{extra}"
                    )

        # (b): gunicorn alone. Probe each setup briefly, measure the best.
        best: tuple[float, tuple[str, int, int]] | None = None
        for setup in DIRECT_SETUPS:
            worker_class, workers, threads = setup
            direct_env = harness.base_env(
                **common,
                GUNICORN_WORKER_CLASS=worker_class,
                GUNICORN_THREADS=str(threads),
            )
            with harness.gunicorn(
                "veza.wsgi", direct_env, name="hls-serve-direct", workers=workers
            ) as server:
                url = server.url + package.origin_path
                verify(url, package)
                load(url, duration=1)
                probe = load(url, duration=args.probe)
            print(
                f"  probe {worker_class} x{workers}"
                f"{f' x{threads} threads' if threads > 1 else ''}: "
                f"{probe.rps:,.0f} req/s, errors {probe.errors}"
            )
            if best is None or probe.rps > best[0]:
                best = (probe.rps, setup)
        if best is None:
            raise RuntimeError("no direct-mode setup was probed")
        worker_class, workers, threads = best[1]
        setup_name = f"{worker_class} x{workers}" + (
            f" x{threads} threads" if threads > 1 else ""
        )
        notes["direct_setup"] = setup_name
        direct_env = harness.base_env(
            **common,
            GUNICORN_WORKER_CLASS=worker_class,
            GUNICORN_THREADS=str(threads),
        )
        with harness.gunicorn(
            "veza.wsgi", direct_env, name="hls-serve-direct", workers=workers
        ) as server:
            url = server.url + package.origin_path
            verify(url, package)
            results[f"{DIRECT} ({setup_name})"] = measure(
                f"{DIRECT} ({setup_name})", url, args, package.range_header
            )
    print(harness.load_note())
    return report(results, notes, package.size, args)


def report(
    results: dict[str, list[Load]],
    notes: dict[str, object],
    size: int,
    args: argparse.Namespace,
) -> dict[str, object]:
    def pick(runs: list[Load]) -> Load:
        return sorted(runs, key=lambda r: r.rps)[len(runs) // 2]

    chosen = {label: pick(runs) for label, runs in results.items()}
    static = chosen[STATIC]
    print()
    print(
        f"Segment GETs of {size:,} bytes, wrk -t{args.threads} -c{args.connections} "
        f"-d{args.duration}s --latency; median of {args.repeats} run(s)"
    )
    rows = [
        [
            label,
            f"{r.rps:,.0f}",
            f"{r.rps * size / 1e6:,.1f}",
            f"{r.p50_ms:.2f}",
            f"{r.p99_ms:.2f}",
            str(r.errors),
            f"{r.rps / static.rps:.2f}x",
        ]
        for label, r in chosen.items()
    ]
    harness.print_table(
        ["target", "req/s", "MB/s (bodies)", "p50 ms", "p99 ms", "errors", "vs (a)"],
        rows,
    )
    summary: dict[str, object] = {
        **notes,
        "wrk": f"-t{args.threads} -c{args.connections} -d{args.duration}s",
        "results": {
            label: {**vars(r), "body_mb_s": round(r.rps * size / 1e6, 1)}
            for label, r in chosen.items()
        },
    }
    for label in (NGINX_MODE, NGINX_ACCEL):
        if label not in chosen:
            continue
        ratio = chosen[label].rps / static.rps
        if label == NGINX_MODE:
            verdict = "OK" if ratio >= GOAL_NGINX_MODE else "MISSED"
            goal = f"goal >= {GOAL_NGINX_MODE}x: {verdict}"
        else:
            goal = "NOT nginx mode: veza.conf has no auth_request block"
        print(f"Ratio {label} / (a) nginx static: {ratio:.3f}x ({goal})")
        print(
            "  requests reaching Django during each nginx-mode run: "
            f"{notes.get('django_requests_during_load')}"
        )
        summary["ratio_nginx_mode" if label == NGINX_MODE else "ratio_nginx_accel"] = (
            round(ratio, 3)
        )
    for label, r in chosen.items():
        if label.startswith("(b)"):
            ratio = r.rps / static.rps
            print(f"Ratio {label} / (a): {ratio:.3f}x (measured, no goal)")
            summary["ratio_direct"] = round(ratio, 3)
    if any(r.errors for r in chosen.values()):
        print("WARNING: some requests failed (see the errors column)")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--probe", type=int, default=4, help="seconds per direct-mode setup probe"
    )
    parser.add_argument(
        "--seconds", type=int, default=60, help="length of the packaged source"
    )
    args = parser.parse_args()
    summary = run(args)
    harness.OUT.mkdir(parents=True, exist_ok=True)
    (harness.OUT / "bench_hls_serve.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
