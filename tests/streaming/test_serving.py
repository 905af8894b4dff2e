"""HLS serving: the master URL API, the origin's headers and tokens, CDN mode."""

from __future__ import annotations

import datetime as dt
import gzip
import re
import shutil
import time
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from prometheus_client import REGISTRY

from cdn.origin import origin_token
from cdn.services import cdn_verify
from streaming.models import HlsPackage, PackageStatus
from streaming.packaging import package_audio
from streaming.playback import cookie_domain, hls_origin_directory, hls_origin_scope
from streaming.playlists import master_playlist, media_playlist
from streaming.renditions import PackageOutput
from streaming.services import (
    hls_content_hash,
    hls_package_request,
    hls_package_settings,
)
from tests.streaming.conftest import package_track
from tests.tracks.helpers import assert_error, create_track
from tracks import services as track_services
from tracks.models import SHARED_VISIBILITIES, Track
from veza.errors import NotFound

pytestmark = pytest.mark.django_db

KEY_FILE = Path(__file__).parents[1] / "cdn" / "cloudfront-test-key.pem"
PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
ORIGIN_URL = re.compile(
    r"http://testserver/origin/hls/(?P<expires>\d+)/(?P<token>[A-Za-z0-9_-]+)/"
    r"(?P<hash>[0-9a-f]{64})/master\.m3u8"
)


# Packaging costs seconds, so the serving tests publish one package made by
# the real packager once per session, under each test's own track.


@pytest.fixture(scope="session")
def template(song_file: Path, tmp_path_factory) -> tuple[Path, PackageOutput]:
    from django.conf import settings

    root = tmp_path_factory.mktemp("hls-template")
    output = package_audio(
        source=song_file,
        workdir=root,
        ladder=settings.HLS_LADDER,
        segment_seconds=settings.HLS_SEGMENT_SECONDS,
    )
    for rendition in output.renditions:
        (root / rendition.name / "index.m3u8").write_text(media_playlist(rendition))
    (root / "master.m3u8").write_text(master_playlist(output.renditions))
    return root, output


def publish(track: Track, template: tuple[Path, PackageOutput]) -> HlsPackage:
    """A ready package of `track` on local disk, as the packager leaves it."""
    from django.conf import settings

    root, output = template
    package_settings = hls_package_settings()
    content_hash = hls_content_hash(track=track, package_settings=package_settings)
    shutil.copytree(root, Path(settings.MEDIA_ROOT) / "hls" / content_hash)
    files = {
        p.relative_to(root).as_posix(): p.stat().st_size
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
    return HlsPackage.objects.create(
        track=track,
        content_hash=content_hash,
        status=PackageStatus.READY,
        storage_backend=track.storage_backend,
        settings=package_settings,
        renditions=[r.as_dict() for r in output.renditions],
        files=files,
        duration_seconds=output.duration,
        segment_count=sum(len(r.segments) for r in output.renditions),
        total_bytes=sum(files.values()),
    )


@pytest.fixture
def track(auth_client, song_file) -> Track:
    body = create_track(
        auth_client, song_file.read_bytes(), name="song.flac", visibility="public"
    )
    return Track.objects.get(pk=body["id"])


@pytest.fixture
def package(track, template) -> HlsPackage:
    return publish(track, template)


def hls(client, track_id) -> dict:
    response = client.get(f"/api/v1/tracks/{track_id}/hls")
    assert response.status_code == 200, response.content
    return response.json()


def origin_parts(url: str) -> re.Match[str]:
    match = ORIGIN_URL.fullmatch(url)
    assert match is not None, url
    return match


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def master_url(client, package: HlsPackage) -> str:
    body = hls(client, package.track_id)
    assert body["source"] == "origin"
    return body["master_url"]


def file_url(client, package: HlsPackage, name: str) -> str:
    return urljoin(master_url(client, package), name)


def body_of(response) -> bytes:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content)
    return response.content


def local_bytes(package: HlsPackage, name: str) -> bytes:
    from django.conf import settings

    return (Path(settings.MEDIA_ROOT) / package.directory / name).read_bytes()


def hls_requests(kind: str, status: int) -> float:
    value = REGISTRY.get_sample_value(
        "veza_hls_origin_requests_total", {"kind": kind, "status": str(status)}
    )
    return value or 0.0


# The API


def test_ready_package_gets_an_origin_url_with_a_path_token(
    auth_client, package, settings
):
    before = time.time()
    response = auth_client.get(f"/api/v1/tracks/{package.track_id}/hls")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"status", "master_url", "expires_at", "source", "loudness"}
    assert body["status"] == "ready"
    assert set(body["loudness"]) == {"integrated_lufs", "true_peak_dbtp", "gain_db"}
    assert body["source"] == "origin"
    match = ORIGIN_URL.fullmatch(body["master_url"])
    assert match is not None, body["master_url"]
    assert match["hash"] == package.content_hash
    expires = int(match["expires"])
    assert int(before) + settings.HLS_URL_TTL <= expires
    assert expires <= time.time() + settings.HLS_URL_TTL
    assert match["token"] == origin_token(
        hls_origin_scope(
            package.content_hash,
            shared=package.track.visibility in SHARED_VISIBILITIES,
        ),
        expires,
    )
    assert dt.datetime.fromisoformat(body["expires_at"]) == dt.datetime.fromtimestamp(
        expires, tz=dt.UTC
    )
    assert "?" not in body["master_url"]
    # A signed URL in the body: nothing between may keep it.
    assert response["Cache-Control"] == "private, no-store"


def test_track_without_a_package_is_missing(auth_client, track):
    assert hls(auth_client, track.pk) == {
        "status": "missing",
        "master_url": None,
        "expires_at": None,
        "source": None,
        "loudness": None,
    }


def test_a_track_without_a_package_is_queued_on_first_play(
    auth_client, track, settings, django_capture_on_commit_callbacks
):
    # With packaging on, a track from before HLS gets packaged when first
    # asked for: the player sees pending, then ready.
    settings.HLS_PACKAGE_ON_UPLOAD = True
    with django_capture_on_commit_callbacks(execute=True):
        assert hls(auth_client, track.pk)["status"] == "pending"
    body = hls(auth_client, track.pk)
    assert body["status"] == "ready"
    assert body["master_url"]


@pytest.mark.parametrize("status", ["pending", "processing", "failed"])
def test_unready_package_has_its_status_and_no_url(auth_client, track, status):
    package = hls_package_request(track=track)  # queued: on_commit never runs
    assert package.status == PackageStatus.PENDING
    HlsPackage.objects.filter(pk=package.pk).update(status=status)
    assert hls(auth_client, track.pk) == {
        "status": status,
        "master_url": None,
        "expires_at": None,
        "source": None,
        "loudness": None,
    }


def test_anonymous_listeners_play_public_and_unlisted_tracks(
    api_client, auth_client, track, package
):
    assert hls(api_client, track.pk)["status"] == "ready"
    auth_client.patch(
        f"/api/v1/tracks/{track.pk}/", {"visibility": "unlisted"}, format="json"
    )
    assert hls(api_client, track.pk)["status"] == "ready"


def test_private_tracks_play_only_for_their_owner(
    api_client, auth_client, other_client, track, package
):
    response = auth_client.patch(
        f"/api/v1/tracks/{track.pk}/", {"visibility": "private"}, format="json"
    )
    assert response.status_code == 200, response.content
    assert hls(auth_client, track.pk)["status"] == "ready"
    for client in (other_client, api_client):
        assert_error(
            client.get(f"/api/v1/tracks/{track.pk}/hls"), 404, "track_not_found"
        )


def test_unknown_track_is_404(auth_client):
    assert_error(
        auth_client.get("/api/v1/tracks/00000000-0000-0000-0000-000000000000/hls"),
        404,
        "track_not_found",
    )


def test_schema_documents_the_hls_endpoint(auth_client):
    schema = auth_client.get("/api/schema/?format=json").json()
    operation = schema["paths"]["/api/v1/tracks/{track_id}/hls"]["get"]
    assert operation["operationId"] == "tracks_hls"
    assert {"200", "404", "451"} <= set(operation["responses"])


# The origin: headers


def test_master_playlist_headers_and_body(auth_client, package, settings):
    response = auth_client.get(path_of(master_url(auth_client, package)))
    assert response.status_code == 200
    body = body_of(response)
    assert body == local_bytes(package, "master.m3u8")
    assert body.startswith(b"#EXTM3U\n")
    assert response["Content-Type"] == PLAYLIST_TYPE
    assert response["Cache-Control"] == settings.CDN_CACHE_CONTROL_PLAYLISTS
    assert response["Content-Length"] == str(len(body))
    assert response["ETag"] == (
        f'"{package.content_hash[:16]}-master.m3u8-{len(body)}"'
    )
    assert "Accept-Encoding" in response["Vary"]
    assert "Content-Encoding" not in response


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("64k/index.m3u8", PLAYLIST_TYPE),
        ("64k/media.mp4", "audio/mp4"),
        ("256k/media.mp4", "audio/mp4"),
        ("128k/index.m3u8", PLAYLIST_TYPE),
    ],
)
def test_package_files_have_exact_types_and_cache_policies(
    auth_client, package, settings, name, content_type
):
    response = auth_client.get(path_of(file_url(auth_client, package, name)))
    assert response.status_code == 200
    assert body_of(response) == local_bytes(package, name)
    assert response["Content-Type"] == content_type
    assert response["Content-Length"] == str(package.files[name])
    assert response["Accept-Ranges"] == "bytes"
    if name.endswith(".m3u8"):
        assert response["Cache-Control"] == settings.CDN_CACHE_CONTROL_PLAYLISTS
    else:
        assert response["Cache-Control"] == settings.CDN_CACHE_CONTROL_SEGMENTS
        assert "immutable" in response["Cache-Control"]
        assert "Content-Disposition" not in response


def test_relative_uris_of_the_playlists_inherit_the_token(auth_client, package):
    """Resolving every URI of the master and a media playlist reaches every file."""
    master = master_url(auth_client, package)
    fetched = set()
    for line in body_of(auth_client.get(path_of(master))).decode().splitlines():
        if line and not line.startswith("#"):
            media_url = urljoin(master, line)
            media = auth_client.get(path_of(media_url))
            assert media.status_code == 200
            fetched.add(line)
            for entry in body_of(media).decode().splitlines():
                uri = re.search(r'URI="([^"]+)"', entry)
                name = uri[1] if uri else ("" if entry.startswith("#") else entry)
                if name:
                    response = auth_client.get(path_of(urljoin(media_url, name)))
                    assert response.status_code == 200, (name, response.content)
                    fetched.add(f"{line.rsplit('/', 1)[0]}/{name}")
    assert fetched | {"master.m3u8"} == set(package.files)


def test_etag_answers_304(auth_client, package):
    url = path_of(file_url(auth_client, package, "128k/media.mp4"))
    etag = auth_client.get(url)["ETag"]
    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        response = auth_client.get(url, HTTP_IF_NONE_MATCH=header)
        assert response.status_code == 304, header
        assert response["ETag"] == etag
        assert response.content == b""
    assert auth_client.get(url, HTTP_IF_NONE_MATCH='"other"').status_code == 200


def test_playlist_etag_answers_304_per_encoding(auth_client, package):
    url = path_of(master_url(auth_client, package))
    plain = auth_client.get(url)["ETag"]
    zipped = auth_client.get(url, HTTP_ACCEPT_ENCODING="gzip")["ETag"]
    assert plain != zipped
    response = auth_client.get(
        url, HTTP_IF_NONE_MATCH=zipped, HTTP_ACCEPT_ENCODING="gzip"
    )
    assert response.status_code == 304
    assert "Accept-Encoding" in response["Vary"]
    # The identity copy does not match the gzip ETag.
    assert auth_client.get(url, HTTP_IF_NONE_MATCH=zipped).status_code == 200


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [("bytes=0-99", 0, 99), ("bytes=100-", 100, None), ("bytes=-50", -50, None)],
)
def test_segment_ranges_answer_206(auth_client, package, header, first, last):
    name = "64k/media.mp4"
    content = local_bytes(package, name)
    size = len(content)
    start = first if first >= 0 else size + first
    end = size - 1 if last is None else last
    response = auth_client.get(
        path_of(file_url(auth_client, package, name)), HTTP_RANGE=header
    )
    assert response.status_code == 206
    assert body_of(response) == content[start : end + 1]
    assert response["Content-Range"] == f"bytes {start}-{end}/{size}"
    assert response["Content-Length"] == str(end - start + 1)
    assert response["Content-Type"] == "audio/mp4"


def test_range_past_the_end_is_416(auth_client, package):
    name = "64k/media.mp4"
    size = package.files[name]
    response = auth_client.get(
        path_of(file_url(auth_client, package, name)), HTTP_RANGE=f"bytes={size}-"
    )
    assert_error(response, 416, "range_not_satisfiable")
    assert response["Content-Range"] == f"bytes */{size}"
    assert response["Access-Control-Allow-Origin"] == "*"


def test_stale_if_range_gets_the_whole_file(auth_client, package):
    url = path_of(file_url(auth_client, package, "64k/media.mp4"))
    etag = auth_client.get(url)["ETag"]
    assert (
        auth_client.get(url, HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE=etag).status_code
        == 206
    )
    assert (
        auth_client.get(url, HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE='"old"').status_code
        == 200
    )


def test_uncompressed_playlists_answer_ranges(auth_client, package):
    url = path_of(master_url(auth_client, package))
    response = auth_client.get(url, HTTP_RANGE="bytes=0-6")
    assert response.status_code == 206
    assert response.content == b"#EXTM3U"


def test_playlists_are_gzipped_for_clients_that_accept_it(auth_client, package):
    url = path_of(file_url(auth_client, package, "128k/index.m3u8"))
    response = auth_client.get(url, HTTP_ACCEPT_ENCODING="deflate, gzip;q=0.8, br")
    assert response.status_code == 200
    assert response["Content-Encoding"] == "gzip"
    assert response["Content-Type"] == PLAYLIST_TYPE
    assert "Accept-Encoding" in response["Vary"]
    assert gzip.decompress(response.content) == local_bytes(package, "128k/index.m3u8")
    assert response["Content-Length"] == str(len(response.content))
    # Deterministic, so the strong ETag holds across requests.
    again = auth_client.get(url, HTTP_ACCEPT_ENCODING="gzip")
    assert again.content == response.content
    assert again["ETag"] == response["ETag"]
    # A Range on the compressed form is ignored: the whole playlist.
    ranged = auth_client.get(url, HTTP_ACCEPT_ENCODING="gzip", HTTP_RANGE="bytes=0-5")
    assert ranged.status_code == 200
    assert ranged.content == response.content


def test_gzip_refused_or_not_offered_and_segments_stay_identity(auth_client, package):
    playlist = path_of(master_url(auth_client, package))
    for header in ("gzip;q=0", "br", ""):
        response = auth_client.get(playlist, HTTP_ACCEPT_ENCODING=header)
        assert "Content-Encoding" not in response, header
        assert response.content.startswith(b"#EXTM3U")
    segment = auth_client.get(
        path_of(file_url(auth_client, package, "64k/media.mp4")),
        HTTP_ACCEPT_ENCODING="gzip",
    )
    assert "Content-Encoding" not in segment
    assert "Accept-Encoding" not in segment.get("Vary", "")


def test_head_answers_headers_without_a_body(auth_client, package):
    for name in ("master.m3u8", "64k/media.mp4"):
        url = path_of(file_url(auth_client, package, name))
        response = auth_client.head(url)
        assert response.status_code == 200
        assert response.content == b""
        assert response["Content-Length"] == str(package.files[name])
        assert response["ETag"] == auth_client.get(url)["ETag"]
    ranged = auth_client.head(
        path_of(file_url(auth_client, package, "64k/media.mp4")),
        HTTP_RANGE="bytes=0-9",
    )
    assert ranged.status_code == 206
    assert ranged["Content-Length"] == "10"


def test_other_methods_are_405(auth_client, package):
    response = auth_client.post(path_of(master_url(auth_client, package)))
    assert_error(response, 405, "method_not_allowed")
    assert response["Allow"] == "GET, HEAD, OPTIONS"


def test_requests_are_counted(auth_client, package):
    playlists, segments = hls_requests("playlist", 200), hls_requests("segment", 206)
    auth_client.get(path_of(master_url(auth_client, package)))
    auth_client.get(
        path_of(file_url(auth_client, package, "64k/media.mp4")), HTTP_RANGE="bytes=0-1"
    )
    assert hls_requests("playlist", 200) == playlists + 1
    assert hls_requests("segment", 206) == segments + 1


# The origin: CORS


def test_cors_allows_every_origin_by_default(auth_client, package):
    response = auth_client.get(
        path_of(master_url(auth_client, package)), HTTP_ORIGIN="https://player.example"
    )
    assert response["Access-Control-Allow-Origin"] == "*"
    assert response["Access-Control-Expose-Headers"] == "Content-Length, Content-Range"


def test_cors_echoes_only_configured_origins(auth_client, package, settings):
    settings.HLS_CORS_ALLOWED_ORIGINS = ["https://player.example"]
    url = path_of(file_url(auth_client, package, "64k/media.mp4"))
    allowed = auth_client.get(url, HTTP_ORIGIN="https://player.example")
    assert allowed["Access-Control-Allow-Origin"] == "https://player.example"
    assert allowed["Access-Control-Expose-Headers"] == "Content-Length, Content-Range"
    assert "Origin" in allowed["Vary"]
    refused = auth_client.get(url, HTTP_ORIGIN="https://evil.example")
    assert refused.status_code == 200  # CORS is the browser's to enforce
    assert "Access-Control-Allow-Origin" not in refused
    assert "Origin" in refused["Vary"]


# django-cors-headers answers every preflight itself (for the API's
# CORS_ALLOWED_ORIGINS) unless CORS_URLS_REGEX leaves the HLS origin out.
HLS_OUTSIDE_API_CORS = r"^/(?!origin/hls/)"


def preflight(client, url: str, origin: str):
    return client.options(
        url,
        HTTP_ORIGIN=origin,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="range",
    )


def test_cors_middleware_leaves_hls_preflights_to_the_origin(auth_client, package):
    """Needs CORS_URLS_REGEX = HLS_OUTSIDE_API_CORS in veza/settings/base.py."""
    url = path_of(file_url(auth_client, package, "64k/media.mp4"))
    response = preflight(auth_client, url, "https://player.example")
    assert response.status_code == 204
    assert response["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize(
    ("allowed", "origin", "answer"),
    [
        (["*"], "https://player.example", "*"),
        (
            ["https://player.example"],
            "https://player.example",
            "https://player.example",
        ),
        (["https://player.example"], "https://evil.example", None),
    ],
)
def test_preflight_allows_range_for_allowed_origins(
    auth_client, package, settings, allowed, origin, answer
):
    settings.CORS_URLS_REGEX = HLS_OUTSIDE_API_CORS
    settings.HLS_CORS_ALLOWED_ORIGINS = allowed
    url = path_of(file_url(auth_client, package, "64k/media.mp4"))
    response = preflight(auth_client, url, origin)
    assert response.status_code == 204
    assert response["Access-Control-Allow-Methods"] == "GET, HEAD, OPTIONS"
    assert response["Access-Control-Allow-Headers"] == "Range"
    assert response.get("Access-Control-Allow-Origin") == answer
    assert response.content == b""
    # The API keeps its own CORS policy.
    api = preflight(auth_client, f"/api/v1/tracks/{package.track_id}/hls", origin)
    assert "Access-Control-Allow-Methods" not in api


# The origin: tokens and paths


def test_tampered_token_is_403(auth_client, package):
    match = origin_parts(master_url(auth_client, package))
    token = match["token"]
    tampered = ("A" if token[0] != "A" else "B") + token[1:]
    url = (
        f"/origin/hls/{match['expires']}/{tampered}/{package.content_hash}/master.m3u8"
    )
    response = auth_client.get(url)
    assert_error(response, 403, "invalid_token")
    assert response["Access-Control-Allow-Origin"] == "*"
    later = int(match["expires"]) + 1
    assert_error(
        auth_client.get(
            f"/origin/hls/{later}/{token}/{package.content_hash}/master.m3u8"
        ),
        403,
        "invalid_token",
    )


def test_expired_token_is_403(auth_client, package):
    expires = int(time.time()) - 1
    directory = hls_origin_directory(
        content_hash=package.content_hash, expires=expires, shared=False
    )
    assert_error(auth_client.get(f"{directory}64k/media.mp4"), 403, "invalid_token")


def another_package(client, song_file, template) -> HlsPackage:
    body = create_track(client, song_file.read_bytes(), name="b.flac")
    return publish(Track.objects.get(pk=body["id"]), template)


def test_token_of_one_package_does_not_open_another(
    auth_client, package, template, song_file
):
    other = another_package(auth_client, song_file, template)
    assert other.content_hash != package.content_hash
    match = origin_parts(master_url(auth_client, package))
    mine = f"/origin/hls/{match['expires']}/{match['token']}/"
    assert (
        auth_client.get(f"{mine}{package.content_hash}/master.m3u8").status_code == 200
    )
    assert_error(
        auth_client.get(f"{mine}{other.content_hash}/master.m3u8"), 403, "invalid_token"
    )
    assert master_url(auth_client, other) != master_url(auth_client, package)


@pytest.mark.parametrize(
    "name",
    [
        "64k/seg_99999.m4s",
        "nope.m3u8",
        "64k",
        "64k/",
        "./master.m3u8",
        "64k/../master.m3u8",
        "../../../../etc/passwd",
        "%2e%2e/%2e%2e/etc/passwd",
        "master.m3u8/",
        "64k//init.mp4",
    ],
)
def test_names_outside_the_package_are_404(auth_client, package, name):
    directory = master_url(auth_client, package).removesuffix("master.m3u8")
    assert_error(auth_client.get(path_of(directory) + name), 404, "hls_file_not_found")


def test_traversal_into_another_package_is_404(
    auth_client, package, template, song_file
):
    other = another_package(auth_client, song_file, template)
    directory = path_of(master_url(auth_client, package).removesuffix("master.m3u8"))
    for name in (
        f"../{other.content_hash}/master.m3u8",
        f"%2e%2e/{other.content_hash}/master.m3u8",
    ):
        assert_error(auth_client.get(directory + name), 404, "hls_file_not_found")


def test_unready_package_is_404(auth_client, package):
    url = path_of(master_url(auth_client, package))
    assert auth_client.get(url).status_code == 200
    package.status = PackageStatus.PROCESSING
    package.save(update_fields=["status"])
    assert_error(auth_client.get(url), 404, "hls_file_not_found")


def test_listed_file_missing_on_disk_is_404(auth_client, package, settings):
    url = path_of(file_url(auth_client, package, "64k/media.mp4"))
    (Path(settings.MEDIA_ROOT) / package.directory / "64k/media.mp4").unlink()
    assert_error(auth_client.get(url), 404, "hls_file_not_found")
    assert_error(
        auth_client.get(url, HTTP_RANGE="bytes=0-1"), 404, "hls_file_not_found"
    )


# nginx mode


def test_accel_redirect_hands_segments_to_nginx(auth_client, package, settings):
    settings.VEZA_ACCEL_REDIRECT_PREFIX = "/_protected"
    name = "64k/media.mp4"
    response = auth_client.get(path_of(file_url(auth_client, package, name)))
    assert response.status_code == 200
    assert response["X-Accel-Redirect"] == f"/_protected/{package.directory}{name}"
    assert response["Content-Type"] == "audio/mp4"
    assert response["Cache-Control"] == settings.CDN_CACHE_CONTROL_SEGMENTS
    assert response["Access-Control-Allow-Origin"] == "*"
    assert response.content == b""
    # Playlists are a few hundred bytes: served (and gzipped) by the view.
    playlist = auth_client.get(
        path_of(master_url(auth_client, package)), HTTP_ACCEPT_ENCODING="gzip"
    )
    assert "X-Accel-Redirect" not in playlist
    assert playlist["Content-Encoding"] == "gzip"


def auth(client, uri: str):
    return client.get("/origin/hls-auth", HTTP_X_ORIGINAL_URI=uri)


def test_nginx_auth_allows_a_valid_token_once_per_scope(api_client, package):
    uri = path_of(master_url(api_client, package))
    for name in ("master.m3u8", "64k/index.m3u8", "256k/media.mp4"):
        response = auth(api_client, uri.removesuffix("master.m3u8") + name)
        assert response.status_code == 204, response.content
        assert response["X-Veza-Backend"] == "local"
    # nginx passes $request_uri, query string included.
    assert auth(api_client, uri + "?_HLS_msn=1").status_code == 204


def test_nginx_auth_refuses_what_the_origin_refuses(api_client, package):
    uri = path_of(master_url(api_client, package))
    directory = uri.removesuffix("master.m3u8")
    match = origin_parts("http://testserver" + uri)
    forged = f"/origin/hls/{match['expires']}/{'x' * 43}/{package.content_hash}/"
    assert_error(auth(api_client, forged + "master.m3u8"), 403, "invalid_token")
    for bad in (
        directory + "64k/seg_99999.m4s",
        directory + "../" + package.content_hash + "/master.m3u8",
        directory + "%2e%2e/master.m3u8",
        directory + "64k//init.mp4",
        "/origin/tracks/whatever",
        "",
    ):
        assert_error(auth(api_client, bad), 404, "hls_file_not_found")
    assert_error(api_client.get("/origin/hls-auth"), 404, "hls_file_not_found")


def test_nginx_auth_counts_its_answers(api_client, package):
    before = hls_requests("auth", 204)
    auth(api_client, path_of(master_url(api_client, package)))
    assert hls_requests("auth", 204) == before + 1


# CDN mode


def on_s3(package: HlsPackage) -> HlsPackage:
    """The row as migrate_storage leaves a package it moved to S3."""
    HlsPackage.objects.filter(pk=package.pk).update(storage_backend="s3")
    package.refresh_from_db()
    return package


@pytest.fixture
def bunny(settings):
    settings.CDN_ENABLED = True
    settings.CDN_PROVIDER = "bunny"
    settings.CDN_BASE_URL = "https://veza.b-cdn.net"
    settings.CDN_SECURITY_KEY = "bunny-zone-key"
    return settings


def test_bunny_signs_the_package_directory_in_the_path(api_client, package, bunny):
    on_s3(package)
    body = hls(api_client, package.track_id)
    assert body["source"] == "cdn"
    url = body["master_url"]
    assert url.startswith("https://veza.b-cdn.net/bcdn_token=")
    assert url.endswith(f"/hls/{package.content_hash}/master.m3u8")
    assert f"&token_path=%2Fhls%2F{package.content_hash}%2F&" in url
    assert "?" not in url  # nothing a relative URI would drop
    assert cdn_verify(url=url)
    # Nothing can recall a CDN URL: it lives CDN_TOKEN_TTL, not HLS_URL_TTL.
    expires = dt.datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
    lifetime = (expires - dt.datetime.now(dt.UTC)).total_seconds()
    assert (
        bunny.CDN_TOKEN_TTL - 10 < lifetime <= bunny.CDN_TOKEN_TTL < bunny.HLS_URL_TTL
    )
    # A player resolves the playlists' relative URIs against it.
    media = urljoin(url, "128k/index.m3u8")
    assert cdn_verify(url=urljoin(media, "media.mp4"))
    # The token is scoped to this package's directory.
    other = url.replace(package.content_hash, "f" * 64)
    assert not cdn_verify(url=other)


def test_packages_still_on_local_disk_play_from_the_origin(api_client, package, bunny):
    assert hls(api_client, package.track_id)["source"] == "origin"


def test_cloudfront_sets_signed_cookies_for_the_directory(
    api_client, package, settings
):
    on_s3(package)
    settings.CDN_ENABLED = True
    settings.CDN_PROVIDER = "cloudfront"
    settings.CDN_BASE_URL = "https://cdn.veza.example"
    settings.CDN_KEY_PAIR_ID = "K2JCJMDEHXQW5F"
    settings.CDN_PRIVATE_KEY_FILE = str(KEY_FILE)
    settings.ALLOWED_HOSTS = ["api.veza.example"]
    response = api_client.get(
        f"/api/v1/tracks/{package.track_id}/hls",
        HTTP_HOST="api.veza.example",
        secure=True,
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["source"] == "cdn"
    directory = f"/hls/{package.content_hash}/"
    assert body["master_url"].startswith(f"https://cdn.veza.example{directory}master")
    cookies = {name: morsel.value for name, morsel in response.cookies.items()}
    assert set(cookies) == {
        "CloudFront-Policy",
        "CloudFront-Signature",
        "CloudFront-Key-Pair-Id",
    }
    for morsel in response.cookies.values():
        assert morsel["path"] == directory
        assert morsel["domain"] == "veza.example"
        assert morsel["secure"] is True
        assert morsel["httponly"] is True
        assert morsel["samesite"] == "None"
        assert not morsel["max-age"]
        assert not morsel["expires"]
    # The master carries its signature; segments rely on the cookies.
    assert cdn_verify(url=body["master_url"])
    segment = f"https://cdn.veza.example{directory}64k/media.mp4"
    assert not cdn_verify(url=segment)
    assert cdn_verify(url=segment, cookies=cookies)
    assert not cdn_verify(
        url=segment.replace(package.content_hash, "f" * 64), cookies=cookies
    )


@pytest.mark.parametrize(
    ("api", "cdn", "domain"),
    [
        ("api.veza.example", "cdn.veza.example", "veza.example"),
        ("veza.example", "media.veza.example", "veza.example"),
        ("api.veza.example", "d111111abcdef8.cloudfront.net", None),
        ("cdn.veza.example", "cdn.veza.example", None),
        ("localhost", "cdn.veza.example", None),
        ("a.co.uk", "b.co.uk", "co.uk"),  # the browser refuses a public suffix
    ],
)
def test_cookie_domain_is_the_shared_parent(api, cdn, domain):
    assert cookie_domain(api_host=api, cdn_host=cdn) == domain


def test_signing_failure_falls_back_to_the_origin(api_client, package, settings):
    on_s3(package)
    settings.CDN_ENABLED = True
    settings.CDN_PROVIDER = "r2"  # R2 presigns single objects: no directories
    settings.CDN_R2_ACCOUNT_ID = "acc"
    settings.CDN_R2_ACCESS_KEY_ID = "AK"
    settings.CDN_R2_SECRET_ACCESS_KEY = "SK"
    settings.CDN_R2_BUCKET = "media"
    body = hls(api_client, package.track_id)
    assert body["source"] == "origin"
    assert ORIGIN_URL.fullmatch(body["master_url"])
    settings.CDN_FALLBACK = "none"
    response = api_client.get(f"/api/v1/tracks/{package.track_id}/hls")
    assert_error(response, 503, "cdn_unavailable")


# Packages on S3, served by the origin


def test_origin_serves_packages_on_s3(
    s3, auth_client, song_file, settings, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        track, package = package_track(
            auth_client, song_file, title="On S3", visibility="public"
        )
    package.refresh_from_db()
    assert package.status == PackageStatus.READY, package.error
    assert package.storage_backend == "s3"
    assert not (Path(settings.MEDIA_ROOT) / package.directory).exists()

    def s3_bytes(name: str) -> bytes:
        obj = s3.get_object(Bucket=s3.bucket, Key=package.directory + name)
        return obj["Body"].read()

    master = master_url(auth_client, package)
    response = auth_client.get(path_of(master), HTTP_ACCEPT_ENCODING="gzip")
    assert response.status_code == 200
    assert gzip.decompress(response.content) == s3_bytes("master.m3u8")
    name = "128k/media.mp4"
    segment = auth_client.get(path_of(urljoin(master, name)))
    assert segment.status_code == 200
    assert segment["Content-Type"] == "audio/mp4"
    assert body_of(segment) == s3_bytes(name)
    ranged = auth_client.get(path_of(urljoin(master, name)), HTTP_RANGE="bytes=10-19")
    assert ranged.status_code == 206
    assert body_of(ranged) == s3_bytes(name)[10:20]
    # Even with nginx in front, S3 bytes come from the view.
    settings.VEZA_ACCEL_REDIRECT_PREFIX = "/_protected"
    assert "X-Accel-Redirect" not in auth_client.get(path_of(urljoin(master, name)))
    assert auth(auth_client, path_of(master))["X-Veza-Backend"] == "s3"
    assert track.pk == package.track_id


@pytest.mark.django_db(transaction=True)
def test_a_package_for_a_track_deleted_meanwhile_is_a_404(auth_client, wav_file):
    """Another process may still have the track's playback columns cached
    after it was deleted: queueing its package finds no row, a 404."""
    track = Track.objects.get(pk=create_track(auth_client, wav_file.read_bytes())["id"])
    Track.objects.filter(pk=track.pk).delete()
    with pytest.raises(NotFound) as raised:
        hls_package_request(track=track)
    assert raised.value.code == "track_not_found"
    assert not HlsPackage.objects.exists()


def test_going_private_revokes_the_hls_urls_handed_out(
    api_client, auth_client, track, package
):
    listener_url = path_of(file_url(api_client, package, "64k/media.mp4"))
    assert api_client.get(listener_url).status_code == 200
    auth_client.patch(
        f"/api/v1/tracks/{track.pk}/", {"visibility": "private"}, format="json"
    )
    assert_error(api_client.get(listener_url), 403, "invalid_token")
    # The owner's fresh URL plays; going unlisted revokes the owner's and
    # shares the track again.
    owner_url = path_of(file_url(auth_client, package, "64k/media.mp4"))
    assert auth_client.get(owner_url).status_code == 200
    auth_client.patch(
        f"/api/v1/tracks/{track.pk}/", {"visibility": "unlisted"}, format="json"
    )
    assert_error(auth_client.get(owner_url), 403, "invalid_token")
    assert api_client.get(listener_url).status_code == 200


def test_a_takedown_or_delete_revokes_the_hls_urls_handed_out(
    api_client, auth_client, track, package
):
    url = path_of(file_url(api_client, package, "64k/media.mp4"))
    track_services.track_take_down(track=Track.objects.get(pk=track.pk), reason="DMCA")
    assert_error(api_client.get(url), 451, "track_taken_down")
    Track.objects.get(pk=track.pk).delete()
    assert_error(api_client.get(url), 404, "hls_file_not_found")


@pytest.mark.parametrize(
    ("lufs", "peak", "gain"),
    [
        (-20.0, -8.0, 6.0),  # up to the target's -14: the peak has room
        (-20.0, -3.0, 2.0),  # up, but only until the true peak is at -1
        (-9.0, -0.1, -5.0),  # loud masters come down to the target
        (None, None, None),  # silence: no integrated loudness
    ],
)
def test_the_answer_carries_the_normalising_gain(
    auth_client, package, settings, lufs, peak, gain
):
    settings.PLAYER_TARGET_LUFS = -14.0
    HlsPackage.objects.filter(pk=package.pk).update(
        loudness_lufs=lufs, true_peak_dbtp=peak
    )
    body = hls(auth_client, package.track_id)
    assert body["loudness"] == {
        "integrated_lufs": lufs,
        "true_peak_dbtp": peak,
        "gain_db": gain,
    }
