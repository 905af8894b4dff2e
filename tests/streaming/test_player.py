"""The embeddable player page: access rules, embedding headers, what it shows."""

from __future__ import annotations

import hashlib
import re

import pytest
from django.test import Client
from django.urls import reverse

from streaming.player import format_duration
from tracks.models import Track, Visibility
from tracks.services import track_take_down

pytestmark = pytest.mark.django_db


def make_track(owner, *, title="Night Drive", visibility=Visibility.PUBLIC, **fields):
    content = title.encode()
    return Track.objects.create(
        owner=owner,
        title=title,
        visibility=visibility,
        original_filename="song.flac",
        mime_type="audio/flac",
        size_bytes=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        duration_seconds=fields.pop("duration_seconds", 187.4),
        storage_key=f"tracks/{title}.flac",
        **fields,
    )


def play_url(track) -> str:
    return reverse("track-player", kwargs={"track_id": track.pk})


def session_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def assert_embeddable(response, ancestors: str = "*") -> None:
    assert response["Content-Security-Policy"] == f"frame-ancestors {ancestors}"
    # xframe_options_exempt: no X-Frame-Options at all (the project sets DENY).
    assert "X-Frame-Options" not in response


def test_the_url_is_tracks_id_play(user) -> None:
    track = make_track(user)
    assert play_url(track) == f"/tracks/{track.pk}/play"


def test_public_track_plays_for_anyone(user) -> None:
    track = make_track(user)
    response = Client().get(play_url(track))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert_embeddable(response)
    html = response.content.decode()
    assert '<h1 id="track-title">Night Drive</h1>' in html
    assert "<title>Night Drive · Veza</title>" in html
    assert '<time id="duration" datetime="PT187S">3:07</time>' in html
    assert 'id="bitrate"' in html
    # The page's own controls drive a bare <audio>: a play button and the
    # waveform as a slider, its range the duration in whole seconds.
    assert re.search(r"<audio [^>]*\bcontrols\b", html) is None
    assert re.search(r'<button [^>]*id="play"[^>]*aria-label="Play"', html)
    assert re.search(
        r'id="waveform"[^>]*role="slider"[^>]*aria-valuemax="187"', html, re.S
    )
    assert '<span id="track-owner">alice</span>' in html
    assert 'data-duration="187.400"' in html
    assert f'data-hls-url="/api/v1/tracks/{track.pk}/hls"' in html
    assert f'data-waveform-url="/api/v1/tracks/{track.pk}/waveform"' in html
    # Everything it loads is ours: no CDN, works offline.
    assert "/static/streaming/vendor/hls.js/hls.min.js" in html
    assert "/static/streaming/player.js" in html
    assert not re.search(r"""(src|href)=["']https?://""", html)
    assert "private" in response["Cache-Control"]


def test_unlisted_track_plays_for_anyone(user) -> None:
    track = make_track(user, visibility=Visibility.UNLISTED)
    assert Client().get(play_url(track)).status_code == 200


def test_private_track_of_someone_else_is_a_404_page(user, other_user) -> None:
    track = make_track(user, title="Secret demo", visibility=Visibility.PRIVATE)
    for client in (Client(), session_client(other_user)):
        response = client.get(play_url(track))
        assert response.status_code == 404
        assert response["Content-Type"].startswith("text/html")
        assert "Secret demo" not in response.content.decode()
        assert "Track not found" in response.content.decode()


def test_private_track_plays_for_its_owner_session(user) -> None:
    track = make_track(user, title="Secret demo", visibility=Visibility.PRIVATE)
    response = session_client(user).get(play_url(track))
    assert response.status_code == 200
    assert "Secret demo" in response.content.decode()
    assert_embeddable(response)


def test_unknown_track_is_a_404_page() -> None:
    response = Client().get("/tracks/00000000-0000-4000-8000-000000000000/play")
    assert response.status_code == 404
    assert "Track not found" in response.content.decode()
    assert Client().get("/tracks/not-a-uuid/play").status_code == 404


def test_taken_down_track_answers_451(user) -> None:
    track = make_track(user, title="Infringing")
    assert Client().get(play_url(track)).status_code == 200
    track_take_down(track=track, reason="DMCA notice 42")
    for client in (Client(), session_client(user)):
        response = client.get(play_url(track))
        assert response.status_code == 451
        html = response.content.decode()
        assert "taken down" in html
        assert "DMCA" not in html  # the reason is for staff only
        assert "Infringing" not in html
        assert "hls.min.js" not in html
        assert_embeddable(response)


def test_titles_are_escaped(user) -> None:
    track = make_track(user, title='<script>alert("x")</script>')
    html = Client().get(play_url(track)).content.decode()
    assert '<script>alert("x")</script>' not in html
    assert "&lt;script&gt;" in html


def test_frame_ancestors_come_from_settings(user, settings) -> None:
    track = make_track(user)
    settings.HLS_PLAYER_FRAME_ANCESTORS = ["'self'", "https://blog.example.com"]
    response = Client().get(play_url(track))
    assert_embeddable(response, "'self' https://blog.example.com")
    # Nothing can break out of the directive.
    settings.HLS_PLAYER_FRAME_ANCESTORS = ["https://a.example; script-src *"]
    assert_embeddable(Client().get(play_url(track)), "'none'")


def test_other_pages_still_deny_framing(user) -> None:
    response = Client().get("/admin/login/")
    assert response["X-Frame-Options"] == "DENY"


def test_only_get_and_head(user) -> None:
    track = make_track(user)
    assert Client().head(play_url(track)).status_code == 200
    assert Client().post(play_url(track)).status_code == 405


def test_autoplay_is_opt_in(user) -> None:
    track = make_track(user)
    plain = Client().get(play_url(track)).content.decode()
    assert 'data-autoplay="false"' in plain
    assert re.search(r"<audio [^>]*\bautoplay\b", plain) is None
    wanted = Client().get(play_url(track) + "?autoplay=1").content.decode()
    assert 'data-autoplay="true"' in wanted


def test_the_vendored_player_files_are_served() -> None:
    client = Client()
    for path in (
        "/static/streaming/vendor/hls.js/hls.min.js",
        "/static/streaming/player.js",
        "/static/streaming/waveform.js",
        "/static/veza/pages.css",
    ):
        response = client.get(path)
        assert response.status_code == 200, path
        body = b"".join(response.streaming_content)  # type: ignore[attr-defined]
        assert body
    hls = client.get("/static/streaming/vendor/hls.js/hls.min.js")
    head = b"".join(hls.streaming_content)[:100_000]  # type: ignore[attr-defined]
    assert b"Hls" in head or b"hls" in head


@pytest.mark.parametrize(
    ("seconds", "label"),
    [(None, ""), (0, "0:00"), (14.2, "0:14"), (187.4, "3:07"), (3723, "1:02:03")],
)
def test_format_duration(seconds, label) -> None:
    assert format_duration(seconds) == label


def test_hls_js_sends_credentials_only_for_cloudfront_cookies(
    user, settings, monkeypatch
) -> None:
    track = make_track(user)
    html = Client().get(play_url(track)).content.decode()
    assert 'data-cdn-credentials="false"' in html
    monkeypatch.setattr("streaming.player.cdn_is_enabled", lambda: True)
    settings.CDN_PROVIDER = "bunny"
    html = Client().get(play_url(track)).content.decode()
    assert 'data-cdn-credentials="false"' in html
    settings.CDN_PROVIDER = "cloudfront"
    html = Client().get(play_url(track)).content.decode()
    assert 'data-cdn-credentials="true"' in html
