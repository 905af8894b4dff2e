"""Takedown: every playback route of a taken-down track answers 451, no URL issued."""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

import pytest
from prometheus_client import REGISTRY

from tests.streaming.conftest import package_track
from tests.tracks.helpers import assert_error
from tracks import services
from tracks.models import Track

pytestmark = pytest.mark.django_db

CODE = "track_taken_down"


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def issued(kind: str, source: str) -> float:
    value = REGISTRY.get_sample_value(
        "veza_playback_urls_total", {"kind": kind, "source": source}
    )
    return value or 0.0


def api_routes(track_id) -> list[str]:
    base = f"/api/v1/tracks/{track_id}"
    return [
        f"{base}/stream",
        f"{base}/download",
        f"{base}/stream?redirect=1",
        f"{base}/download?redirect=1",
        f"{base}/hls",
    ]


def assert_taken_down(response) -> None:
    assert_error(response, 451, CODE)
    assert b"http" not in response.content  # no URL in the answer
    assert "Location" not in response
    assert not response.cookies


def test_every_playback_route_answers_451_after_a_takedown(
    packaged, auth_client, other_client, api_client
):
    track, _package = packaged
    # URLs issued before the takedown, and every cache warmed.
    stream = auth_client.get(f"/api/v1/tracks/{track.pk}/stream").json()["url"]
    download = auth_client.get(f"/api/v1/tracks/{track.pk}/download").json()["url"]
    master = auth_client.get(f"/api/v1/tracks/{track.pk}/hls").json()["master_url"]
    media = urljoin(master, "128k/index.m3u8")
    origin_files = [
        path_of(stream),
        path_of(download),
        path_of(master),
        path_of(media),
        path_of(urljoin(media, "media.mp4")),
    ]
    for url in origin_files:
        response = auth_client.get(url)
        assert response.status_code == 200, (url, response.content)
    for route in api_routes(track.pk):
        assert auth_client.get(route).status_code in (200, 302)
    auth = auth_client.get("/origin/hls-auth", HTTP_X_ORIGINAL_URI=path_of(master))
    assert auth.status_code == 204

    services.track_take_down(track=Track.objects.get(pk=track.pk), reason="DMCA")

    for client in (auth_client, other_client):
        for route in api_routes(track.pk):
            assert_taken_down(client.get(route))
    assert_taken_down(api_client.get(f"/api/v1/tracks/{track.pk}/hls"))
    for url in origin_files:
        assert_taken_down(auth_client.get(url))
    segment = path_of(urljoin(media, "media.mp4"))
    assert_taken_down(auth_client.get(segment, HTTP_RANGE="bytes=0-9"))
    assert auth_client.head(segment).status_code == 451
    assert_taken_down(
        auth_client.get("/origin/hls-auth", HTTP_X_ORIGINAL_URI=path_of(master))
    )

    services.track_restore(track=Track.objects.get(pk=track.pk))
    for url in origin_files:
        assert auth_client.get(url).status_code == 200
    assert auth_client.get(f"/api/v1/tracks/{track.pk}/hls").json()["status"] == (
        "ready"
    )


def test_no_cdn_url_is_issued_for_a_taken_down_track(
    s3, settings, auth_client, song_file, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        track, package = package_track(
            auth_client, song_file, title="On the CDN", visibility="public"
        )
    package.refresh_from_db()
    assert package.storage_backend == "s3"
    settings.CDN_ENABLED = True
    settings.CDN_PROVIDER = "bunny"
    settings.CDN_BASE_URL = "https://veza.b-cdn.net"
    settings.CDN_SECURITY_KEY = "bunny-zone-key"
    for route in api_routes(track.pk):
        response = auth_client.get(route)
        assert response.status_code in (200, 302)
        target = response.get("Location") or response.json()
        assert "veza.b-cdn.net" in str(target)

    services.track_take_down(track=Track.objects.get(pk=track.pk), reason="DMCA")
    before = {kind: issued(kind, "cdn") for kind in ("stream", "download", "hls")}
    for route in api_routes(track.pk):
        assert_taken_down(auth_client.get(route))
    after = {kind: issued(kind, "cdn") for kind in ("stream", "download", "hls")}
    assert after == before
