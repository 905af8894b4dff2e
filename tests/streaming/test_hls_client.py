"""Real HLS clients (FFmpeg through PyAV, the ffmpeg CLI) against a live server,
directly and through nginx in nginx mode (infra/nginx/veza.conf)."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import av
import av.logging
import pytest
import requests
from av.stream import Discard
from prometheus_client import REGISTRY

from streaming.playback import hls_origin_directory
from tests.cdn.edge import bucket_upstream, run_edge
from tests.cdn.test_edge_ranges import configure, edge_for
from tests.processes import stop_process
from tests.streaming.conftest import package_track
from tests.streaming.range_client import play_every_rung
from tests.webrtc.servers import start_daphne, start_gunicorn
from tracks import services
from tracks.models import SHARED_VISIBILITIES, Track

pytestmark = pytest.mark.django_db(transaction=True)

NGINX_CONF = Path(__file__).parents[2] / "infra" / "nginx" / "veza.conf"


def master_url(base: str, track_id) -> str:
    response = requests.get(f"{base}/api/v1/tracks/{track_id}/hls", timeout=10)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ready"
    assert body["source"] == "origin"
    return body["master_url"]


def decode_with_pyav(url: str, rung: int) -> float:
    """Seconds of audio decoded from rung `rung` of the master at `url`."""
    with av.logging.Capture() as logs, av.open(url, timeout=20) as container:
        streams = container.streams.audio
        assert len(streams) >= rung + 1
        chosen = streams[rung]
        for stream in streams:
            if stream is not chosen:
                # FFmpeg's hls demuxer then never fetches those rungs.
                stream.discard = Discard.all
        seconds = 0.0
        for packet in container.demux(chosen):
            for frame in packet.decode():
                seconds += frame.samples / frame.sample_rate
    errors = [entry for entry in logs if entry[0] <= av.logging.ERROR]
    assert not errors, errors
    return seconds


def decode_with_ffmpeg(url: str) -> None:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.skip("the ffmpeg CLI is not installed (Debian package ffmpeg)")
    result = subprocess.run(
        [ffmpeg, "-nostdin", "-v", "error", "-i", url, "-f", "null", "-"],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert result.stderr == b""


def every_client_plays_every_rung(url: str, track, package) -> None:
    """FFmpeg's demuxer (PyAV), the ffmpeg CLI and the m3u8 + requests client
    play each rung whole; the last reads the one file of each rung by byte
    ranges only, covering it exactly (never the whole file)."""
    for rung in range(len(package.renditions)):
        seconds = decode_with_pyav(url, rung)
        assert abs(seconds - track.duration_seconds) < 0.1, (rung, seconds)
    decode_with_ffmpeg(url)
    played = play_every_rung(url)
    assert len(played) == len(package.renditions)
    for rung_played, rendition in zip(played, package.renditions, strict=True):
        assert abs(rung_played.seconds - track.duration_seconds) < 0.1, rung_played.uri
        urls = {fetched_url for fetched_url, *_ in rung_played.fetches}
        assert urls == {urljoin(rung_played.uri, "media.mp4")}
        assert all(status == 206 for _, _, status, _ in rung_played.fetches)
        received = sum(size for *_, size in rung_played.fetches)
        assert received == package.files[f"{rendition['name']}/media.mp4"]
        assert len(rung_played.fetches) == 1 + len(rendition["segments"])


def test_every_client_plays_the_package_from_a_live_server(packaged, live_server):
    track, package = packaged
    url = master_url(live_server.url, track.pk)
    assert url.startswith(f"{live_server.url}/origin/hls/")
    every_client_plays_every_rung(url, track, package)


@pytest.mark.parametrize("server", ["daphne", "gunicorn"])
def test_every_client_plays_the_package_from_the_servers_users_run(
    packaged, settings, tmp_path, server
):
    """daphne as `make run` starts it, and gunicorn with 2 workers as
    production does, where gunicorn sends each range with sendfile."""
    track, package = packaged
    start = start_daphne if server == "daphne" else start_gunicorn
    app = start(settings, tmp_path, extra={"VEZA_MEDIA_ROOT": str(settings.MEDIA_ROOT)})
    try:
        url = master_url(app.http, track.pk)
        every_client_plays_every_rung(url, track, package)
        # Ranges at the file's far end and across a fragment boundary.
        name = "256k/media.mp4"
        data = (Path(settings.MEDIA_ROOT) / package.directory / name).read_bytes()
        media = urljoin(url, name)
        for header, expected in [
            ("bytes=-7", data[-7:]),
            (f"bytes={len(data) - 10}-", data[-10:]),
            ("bytes=700-90000", data[700:90001]),
        ]:
            response = requests.get(media, headers={"Range": header}, timeout=10)
            assert response.status_code == 206, (header, response.status_code)
            assert response.content == expected, header
            assert response.headers["Content-Length"] == str(len(expected))
    finally:
        app.stop()


# nginx mode


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def render_nginx_conf(
    directory: Path, *, port: int, upstream: str, media_root: Path
) -> Path:
    """infra/nginx/veza.conf with this test's paths and ports, in a main config."""
    site = NGINX_CONF.read_text()
    for old, new in [
        ("listen 80;", f"listen 127.0.0.1:{port};"),
        ("listen [::]:80;", ""),
        ("server 127.0.0.1:8000;", f"server {upstream};"),
        ("/srv/veza/var/media", str(media_root)),
        ("/srv/veza/var/static", str(directory / "static")),
        ("/var/lib/nginx/body", str(directory / "body")),
        ("/var/cache/nginx/veza-hls-auth", str(directory / "hls-auth")),
        ("/var/log/nginx/veza.access.log", str(directory / "veza.access.log")),
        # The test's port is not 80: keep it in the Host Django sees, so the
        # URLs it builds point back at this nginx.
        ("proxy_set_header Host $host;", "proxy_set_header Host $http_host;"),
    ]:
        assert old in site, old
        site = site.replace(old, new)
    (directory / "veza.conf").write_text(site)
    main = directory / "nginx.conf"
    # As root, workers would run as nobody and not read the test's files.
    user = "user root;" if os.geteuid() == 0 else ""
    main.write_text(
        f"""
daemon off;
worker_processes 1;
pid {directory}/nginx.pid;
error_log {directory}/error.log warn;
{user}
events {{ worker_connections 256; }}
http {{
    access_log {directory}/access.log;
    client_body_temp_path {directory}/body;
    proxy_temp_path {directory}/proxy;
    fastcgi_temp_path {directory}/fastcgi;
    uwsgi_temp_path {directory}/uwsgi;
    scgi_temp_path {directory}/scgi;
    include {directory}/veza.conf;
}}
"""
    )
    return main


@pytest.fixture
def nginx(live_server, settings, tmp_path) -> Iterator[str]:
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(binary).exists():
        pytest.skip("nginx is not installed (Debian package nginx)")
    directory = tmp_path / "nginx"
    directory.mkdir()
    port = free_port()
    conf = render_nginx_conf(
        directory,
        port=port,
        upstream=urlsplit(live_server.url).netloc,
        media_root=Path(settings.MEDIA_ROOT),
    )
    checked = subprocess.run(
        [binary, "-t", "-c", str(conf), "-e", str(directory / "error.log")],
        capture_output=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr.decode()
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "127.0.0.1"]
    process = subprocess.Popen(
        [binary, "-c", str(conf), "-e", str(directory / "error.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None, (directory / "error.log").read_text()
                assert time.monotonic() < deadline, "nginx did not start"
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(process)


def auth_requests(status: int) -> float:
    value = REGISTRY.get_sample_value(
        "veza_hls_origin_requests_total", {"kind": "auth", "status": str(status)}
    )
    return value or 0.0


def direct_requests() -> float:
    return sum(
        REGISTRY.get_sample_value(
            "veza_hls_origin_requests_total", {"kind": kind, "status": status}
        )
        or 0.0
        for kind in ("playlist", "segment")
        for status in ("200", "206", "304")
    )


def test_nginx_serves_local_packages_after_one_authorisation(packaged, nginx, settings):
    track, package = packaged
    url = master_url(nginx, track.pk)
    assert url.startswith(f"{nginx}/origin/hls/")
    root = Path(settings.MEDIA_ROOT) / package.directory
    auths, direct = auth_requests(204), direct_requests()

    master = requests.get(url, timeout=10)
    assert master.status_code == 200
    assert master.content == (root / "master.m3u8").read_bytes()
    assert master.headers["Content-Type"] == "application/vnd.apple.mpegurl"
    assert master.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in master.headers["Vary"]
    assert master.headers["Cache-Control"] == settings.CDN_CACHE_CONTROL_PLAYLISTS
    assert master.headers["Access-Control-Allow-Origin"] == "*"
    for name in sorted(package.files):
        response = requests.get(urljoin(url, name), timeout=10)
        assert response.status_code == 200, name
        assert response.content == (root / name).read_bytes()
        if not name.endswith(".m3u8"):
            assert response.headers["Cache-Control"] == (
                settings.CDN_CACHE_CONTROL_SEGMENTS
            )
            assert "Content-Encoding" not in response.headers
    segment = urljoin(url, "128k/media.mp4")
    assert requests.get(segment, timeout=10).headers["Content-Type"] == ("audio/mp4")
    assert requests.get(urljoin(url, "64k/media.mp4"), timeout=10).headers[
        "Content-Type"
    ] == ("audio/mp4")
    ranged = requests.get(segment, headers={"Range": "bytes=10-19"}, timeout=10)
    assert ranged.status_code == 206
    assert ranged.content == (root / "128k/media.mp4").read_bytes()[10:20]
    assert ranged.headers["Access-Control-Expose-Headers"] == (
        "Content-Length, Content-Range"
    )
    size = package.files["128k/media.mp4"]
    assert (
        requests.get(segment, headers={"Range": f"bytes={size}-"}, timeout=10)
    ).status_code == 416
    etag = requests.get(segment, timeout=10).headers["ETag"]
    assert (
        requests.get(segment, headers={"If-None-Match": etag}, timeout=10).status_code
        == 304
    )
    preflight = requests.options(
        segment,
        headers={
            "Origin": "https://player.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "range",
        },
        timeout=10,
    )
    assert preflight.status_code == 204, (preflight.headers, preflight.text)
    assert preflight.headers["Access-Control-Allow-Headers"] == "Range"
    # Every file was read by nginx, after one authorisation of the token.
    assert auth_requests(204) == auths + 1
    assert direct_requests() == direct
    assert requests.get(f"{nginx}/origin/hls-auth", timeout=10).status_code == 404

    direct = direct_requests()
    every_client_plays_every_rung(url, track, package)
    # nginx answered every range from disk: Django served none of them.
    assert direct_requests() == direct


def raw_get(base: str, path: str) -> tuple[int, bytes]:
    """GET `path` exactly as written: no client-side dot-segment resolution."""
    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.putrequest("GET", path, skip_accept_encoding=True)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_nginx_passes_on_the_origins_refusals(packaged, nginx, settings):
    track, package = packaged
    url = master_url(nginx, track.pk)
    directory = url.removesuffix("master.m3u8")
    path = urlsplit(url).path
    expires, token = path.split("/")[3:5]
    # A directory nginx must never serve through this token: no package row.
    secret = "0" * 64
    (Path(settings.MEDIA_ROOT) / "hls" / secret).mkdir(parents=True)
    (Path(settings.MEDIA_ROOT) / "hls" / secret / "master.m3u8").write_text("secret")

    def error(response, status: int, code: str) -> None:
        assert response.status_code == status, response.text
        assert response.json()["error"]["code"] == code

    # The token's scope is authorised and cached from here on.
    assert requests.get(url, timeout=10).status_code == 200
    error(
        requests.get(directory + "64k/seg_09999.m4s", timeout=10),
        404,
        "hls_file_not_found",
    )
    tampered = url.replace(token, token[::-1])
    error(requests.get(tampered, timeout=10), 403, "invalid_token")
    error(
        requests.get(url.replace(package.content_hash, secret), timeout=10),
        403,
        "invalid_token",
    )
    # Traversal: nginx resolves the dot segments (and escapes) before it
    # picks the file, Django checks the raw path; nothing of the other
    # directory comes back.
    base = path.removesuffix("master.m3u8")
    for raw in (
        f"{base}../{secret}/master.m3u8",
        f"{base}%2e%2e/{secret}/master.m3u8",
        f"{base}64k/../../{secret}/master.m3u8",
        f"{base}..%2f{secret}/master.m3u8",
        f"/origin/hls/{expires}/{token}/{secret}/master.m3u8",
    ):
        status, body = raw_get(nginx, raw)
        assert status in (403, 404), (raw, status, body)
        assert b"secret" not in body
        assert json.loads(body)["error"]["code"] in (
            "invalid_token",
            "hls_file_not_found",
            "not_found",
        )
    error(requests.post(url, timeout=10), 405, "method_not_allowed")

    services.track_take_down(track=Track.objects.get(pk=track.pk), reason="DMCA")
    # A token nginx has not seen yet: Django refuses it with 451.
    fresh = hls_origin_directory(
        content_hash=package.content_hash,
        expires=int(expires) + 1,
        shared=package.track.visibility in SHARED_VISIBILITIES,
    )
    error(
        requests.get(f"{nginx}{fresh}master.m3u8", timeout=10), 451, "track_taken_down"
    )
    error(
        requests.get(f"{nginx}/api/v1/tracks/{track.pk}/hls", timeout=10),
        451,
        "track_taken_down",
    )


def test_nginx_still_serves_track_bytes_by_accel_redirect(
    packaged, nginx, settings, song_file
):
    """The internal location the progressive origin redirects to, unchanged."""
    from rest_framework.authtoken.models import Token

    track, _package = packaged
    settings.VEZA_ACCEL_REDIRECT_PREFIX = "/_protected"
    token, _ = Token.objects.get_or_create(user=track.owner)
    body = requests.get(
        f"{nginx}/api/v1/tracks/{track.pk}/stream",
        headers={"Authorization": f"Token {token.key}"},
        timeout=10,
    ).json()
    assert body["url"].startswith(f"{nginx}/origin/tracks/")
    response = requests.get(body["url"], timeout=10)
    assert response.status_code == 200
    assert response.content == song_file.read_bytes()
    assert response.headers["ETag"] == f'"{track.sha256}"'
    ranged = requests.get(body["url"], headers={"Range": "bytes=4-7"}, timeout=10)
    assert ranged.status_code == 206
    assert ranged.content == song_file.read_bytes()[4:8]


@pytest.fixture
def packaged_on_s3(s3, auth_client, song_file, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        track, package = package_track(
            auth_client, song_file, title="On S3", visibility="public"
        )
    package.refresh_from_db()
    assert package.storage_backend == "s3", package.error
    return track, package, s3


def test_nginx_hands_packages_on_s3_to_django(packaged_on_s3, nginx):
    track, package, s3 = packaged_on_s3
    url = master_url(nginx, track.pk)
    direct = direct_requests()
    for name in ("master.m3u8", "256k/index.m3u8", "256k/media.mp4"):
        response = requests.get(urljoin(url, name), timeout=10)
        assert response.status_code == 200, (name, response.text)
        stored = s3.get_object(Bucket=s3.bucket, Key=package.directory + name)
        assert response.content == stored["Body"].read()
    assert direct_requests() == direct + 3
    every_client_plays_every_rung(url, track, package)


# The providers whose token players carry by themselves: Bunny's sits in the
# path, so the playlists' relative URIs inherit it. CloudFront's cookies need
# a browser (tests/browser), and Cloudflare's query token is lost on relative
# URIs (docs/OPERATIONS.md, "Serving").
@pytest.mark.parametrize("provider", ["bunny-hmac", "bunny-sha256"])
def test_every_client_plays_a_package_through_a_signed_cdn_path(
    packaged_on_s3, live_server, settings, s3_server, provider
):
    """The master URL the API hands out is the CDN's, with a directory token;
    an edge that checks that token as the provider's would (tests/cdn/edge.py)
    pulls every range from the bucket."""
    track, package, s3 = packaged_on_s3
    upstream = bucket_upstream(s3, s3_server)
    with run_edge(edge_for(provider, settings), upstream) as edge:
        configure(settings, provider, edge.base_url)
        api = f"{live_server.url}/api/v1/tracks/{track.pk}/hls"
        body = requests.get(api, timeout=10).json()
        assert body["source"] == "cdn", body
        url = body["master_url"]
        assert url.startswith(edge.base_url + "/")
        every_client_plays_every_rung(url, track, package)
        # Every media request reached the bucket as a range, none refused.
        media = [entry for entry in edge.log if "/media.mp4" in entry[1]]
        assert media
        assert all(status == 206 for _, _, status in media), media
        assert all(status != 403 for _, _, status in edge.log)


def test_every_client_plays_a_package_on_s3_from_the_origin(
    packaged_on_s3, live_server
):
    # Each range is a ranged GET to the bucket, read through the origin.
    track, package, _s3 = packaged_on_s3
    url = master_url(live_server.url, track.pk)
    every_client_plays_every_rung(url, track, package)


def test_nginx_logs_signed_urls_without_their_tokens(nginx, tmp_path):
    secret = "Zx9SecretTokenValue"
    paths = [
        f"/healthz?expires=1&token={secret}",
        f"/origin/hls/1/{secret}/{'a' * 64}/master.m3u8",
        f"/ws/calls/?ticket={secret}",
    ]
    for path in paths:
        requests.get(nginx + path, headers={"Referer": nginx + paths[1]}, timeout=30)
    log = tmp_path / "nginx" / "veza.access.log"
    deadline = time.monotonic() + 30
    while not log.exists() or len(log.read_text().splitlines()) < len(paths):
        assert time.monotonic() < deadline, "nginx logged nothing"
        time.sleep(0.1)
    text = log.read_text()
    assert secret not in text
    assert text.count("[redacted]") == 2 * len(paths)  # the URL and the Referer
    assert f"/origin/hls/1/[redacted]/{'a' * 64}/master.m3u8" in text


def test_nginx_serves_only_the_files_the_package_lists(packaged, nginx, settings):
    """A stray file in a package's directory (a leftover, a backup) is not
    served on the strength of the token's cached authorisation: nginx reads
    from disk only names of a package's grammar; Django checks the list."""
    track, package = packaged
    url = master_url(nginx, track.pk)
    assert requests.get(url, timeout=10).status_code == 200  # authorised
    root = Path(settings.MEDIA_ROOT) / package.directory
    for stray in (
        "notes.txt",
        "master.m3u8.bak",
        "64k/backup.mp4",
        "64k/media.mp4.part",
        "64k/sub/seg_00001.m4s",
    ):
        (root / stray).parent.mkdir(exist_ok=True)
        (root / stray).write_bytes(b"not part of the package")
        response = requests.get(urljoin(url, stray), timeout=10)
        assert response.status_code == 404, stray
        assert response.json()["error"]["code"] == "hls_file_not_found"
