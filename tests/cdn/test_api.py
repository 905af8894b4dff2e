"""CDN URLs through the playback API: `source`, fallback, its metric, 503."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pytest
import requests
from prometheus_client import REGISTRY

from cdn.services import cdn_verify
from tests.tracks.helpers import assert_error, create_track

pytestmark = pytest.mark.django_db

KEY_FILE = Path(__file__).with_name("cloudfront-test-key.pem")


def failures(provider: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "veza_cdn_signing_failures_total", {"provider": provider, "outcome": outcome}
    )
    return value or 0.0


def playback(client, track_id: str, kind: str = "stream") -> dict:
    response = client.get(f"/api/v1/tracks/{track_id}/{kind}")
    assert response.status_code == 200, response.content
    return response.json()


@pytest.fixture
def bunny(settings):
    settings.CDN_ENABLED = True
    settings.CDN_PROVIDER = "bunny"
    settings.CDN_BASE_URL = "https://veza.b-cdn.net"
    settings.CDN_SECURITY_KEY = "bunny-zone-key"
    return settings


@pytest.fixture
def track(s3, auth_client, wav_file) -> dict:
    """A track on S3, behind the CDN (whose origin is the bucket)."""
    return create_track(auth_client, wav_file.read_bytes())


def test_rows_still_on_local_disk_play_from_the_origin(
    bunny, settings, auth_client, wav_file
):
    settings.TRACK_STORAGE_BACKEND = "local"
    local = create_track(auth_client, wav_file.read_bytes())
    assert playback(auth_client, local["id"])["source"] == "origin"


@pytest.mark.parametrize("kind", ["stream", "download"])
def test_enabled_cdn_serves_signed_urls_the_edge_accepts(
    bunny, auth_client, track, kind
):
    body = playback(auth_client, track["id"], kind)
    assert body["source"] == "cdn"
    assert body["url"].startswith(f"https://veza.b-cdn.net/tracks/{track['id']}/")
    assert "?token=HS256-" in body["url"]
    assert cdn_verify(url=body["url"])
    expires = int(body["url"].rsplit("expires=", 1)[1])
    assert dt.datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00")) == (
        dt.datetime.fromtimestamp(expires, tz=dt.UTC)
    )


def test_urls_nothing_can_recall_are_short_lived(
    bunny, settings, auth_client, track, wav_file
):
    """CDN and S3 presigned URLs live CDN_TOKEN_TTL (600 s by default); the
    origin's, which it checks against the track on every request, longer."""
    assert settings.CDN_TOKEN_TTL == 600
    assert settings.TRACK_URL_TTL == 3600

    def lifetime(body: dict) -> float:
        expires = dt.datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
        return (expires - dt.datetime.now(dt.UTC)).total_seconds()

    cdn = playback(auth_client, track["id"])
    assert cdn["source"] == "cdn"
    assert 590 < lifetime(cdn) <= 600
    settings.CDN_ENABLED = False
    presigned = playback(auth_client, track["id"])
    assert presigned["source"] == "s3"
    assert 590 < lifetime(presigned) <= 600
    assert "X-Amz-Expires=600" in presigned["url"]
    settings.TRACK_STORAGE_BACKEND = "local"
    local = create_track(auth_client, wav_file.read_bytes())
    origin = playback(auth_client, local["id"])
    assert origin["source"] == "origin"
    assert 3590 < lifetime(origin) <= 3600


def test_redirect_goes_to_the_cdn(bunny, auth_client, track):
    response = auth_client.get(f"/api/v1/tracks/{track['id']}/stream?redirect=1")
    assert response.status_code == 302
    assert response["Location"].startswith("https://veza.b-cdn.net/tracks/")


def test_legacy_bunny_scheme_and_key_rotation(bunny, auth_client, track):
    bunny.CDN_BUNNY_TOKEN_SCHEME = "sha256"
    url = playback(auth_client, track["id"])["url"]
    assert "token=HS256" not in url
    assert cdn_verify(url=url)
    bunny.CDN_PREVIOUS_SECURITY_KEY = "bunny-zone-key"
    bunny.CDN_SECURITY_KEY = "bunny-zone-key-2"
    assert cdn_verify(url=url)
    bunny.CDN_PREVIOUS_SECURITY_KEY = ""
    assert not cdn_verify(url=url)


def test_cloudflare_and_cloudfront_urls(settings, auth_client, track):
    settings.CDN_ENABLED = True
    settings.CDN_PROVIDER = "cloudflare"
    settings.CDN_BASE_URL = "https://media.veza.example"
    settings.CDN_SECURITY_KEY = "waf-secret"
    body = playback(auth_client, track["id"])
    assert body["source"] == "cdn"
    assert "?verify=" in body["url"]
    assert cdn_verify(url=body["url"])

    settings.CDN_PROVIDER = "cloudfront"
    settings.CDN_KEY_PAIR_ID = "K2JCJMDEHXQW5F"
    settings.CDN_PRIVATE_KEY_FILE = str(KEY_FILE)
    body = playback(auth_client, track["id"])
    assert body["source"] == "cdn"
    assert "&Signature=" in body["url"]
    assert body["url"].endswith("&Key-Pair-Id=K2JCJMDEHXQW5F")
    assert cdn_verify(url=body["url"])


def test_signing_error_falls_back_logs_and_counts(settings, auth_client, track, caplog):
    settings.CDN_ENABLED = True
    settings.CDN_PROVIDER = "cloudfront"
    settings.CDN_BASE_URL = "https://d111111abcdef8.cloudfront.net"
    settings.CDN_KEY_PAIR_ID = "K2JCJMDEHXQW5F"
    bad_key = Path(settings.MEDIA_ROOT).parent / "not-a-key.pem"
    bad_key.write_text("not a PEM key")
    settings.CDN_PRIVATE_KEY_FILE = str(bad_key)
    before = failures("cloudfront", "fallback")
    with caplog.at_level(logging.WARNING, logger="cdn.services"):
        body = playback(auth_client, track["id"])
    assert body["source"] == "s3"
    assert failures("cloudfront", "fallback") == before + 1
    assert "CDN signing failed" in caplog.text
    assert "falling back" in caplog.text


def test_fallback_none_answers_503(settings, auth_client, track):
    settings.CDN_ENABLED = True
    settings.CDN_PROVIDER = "r2"
    settings.CDN_R2_ACCOUNT_ID = "acc"
    settings.CDN_R2_ACCESS_KEY_ID = "AK"
    settings.CDN_R2_SECRET_ACCESS_KEY = "SK"
    settings.CDN_R2_BUCKET = "media"
    # Longer than SigV4's 7 days: R2 cannot sign it.
    settings.TRACK_URL_TTL = settings.CDN_TOKEN_TTL = 8 * 86400
    settings.CDN_FALLBACK = "none"
    before = failures("r2", "refused")
    response = auth_client.get(f"/api/v1/tracks/{track['id']}/stream")
    assert_error(response, 503, "cdn_unavailable")
    assert response.json()["error"]["details"] == {"provider": "r2"}
    assert failures("r2", "refused") == before + 1
    settings.CDN_FALLBACK = "origin"
    assert playback(auth_client, track["id"])["source"] == "s3"


def test_s3_rows_fall_back_to_presigned_urls(s3, settings, auth_client, wav_file):
    track = create_track(auth_client, wav_file.read_bytes())
    settings.CDN_ENABLED = True
    settings.CDN_PROVIDER = "cloudfront"
    settings.CDN_BASE_URL = "https://d111111abcdef8.cloudfront.net"
    settings.CDN_KEY_PAIR_ID = "K2JCJMDEHXQW5F"
    # Deleted after start: the file is unreadable when the first URL is signed.
    settings.CDN_PRIVATE_KEY_FILE = str(Path(settings.MEDIA_ROOT) / "gone.pem")
    before = failures("cloudfront", "fallback")
    body = playback(auth_client, track["id"])
    assert body["source"] == "s3"
    assert failures("cloudfront", "fallback") == before + 1
    assert requests.get(body["url"], timeout=10).content == wav_file.read_bytes()


def test_r2_urls_are_served_by_a_real_s3_server(s3, settings, auth_client, wav_file):
    """An R2-style SigV4 URL (our signer) fetches the object from rclone's S3."""
    content = wav_file.read_bytes()
    track = create_track(auth_client, content)
    settings.CDN_ENABLED = True
    settings.CDN_PROVIDER = "r2"
    settings.CDN_BASE_URL = s3.meta.endpoint_url
    settings.CDN_R2_ACCESS_KEY_ID = settings.AWS_ACCESS_KEY_ID
    settings.CDN_R2_SECRET_ACCESS_KEY = settings.AWS_SECRET_ACCESS_KEY
    settings.CDN_R2_BUCKET = s3.bucket
    body = playback(auth_client, track["id"])
    assert body["source"] == "cdn"
    assert body["url"].startswith(f"{s3.meta.endpoint_url}/{s3.bucket}/tracks/")
    assert cdn_verify(url=body["url"])
    fetched = requests.get(body["url"], timeout=10)
    assert fetched.status_code == 200, fetched.text
    assert fetched.content == content
    signature = body["url"].rsplit("=", 1)[1]
    tampered = body["url"][: -len(signature)] + signature[::-1]
    assert requests.get(tampered, timeout=10).status_code == 403
