"""The cdn public surface: directory signing, cache headers, the storages trap."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from django.core.checks import run_checks

from cdn.services import (
    CdnSigningError,
    cdn_cache_control,
    cdn_is_enabled,
    cdn_playlist_cache_control,
    cdn_segment_cache_control,
    cdn_service,
    cdn_signed_directory,
    cdn_signed_url,
    cdn_verify,
)

KEY_FILE = str(Path(__file__).with_name("cloudfront-test-key.pem"))
PACKAGE = "/hls/" + "0f" * 32 + "/"


def test_the_service_always_exists_and_is_off_by_default():
    service = cdn_service()
    assert service.is_enabled is False
    assert cdn_is_enabled() is False
    with pytest.raises(CdnSigningError, match="disabled"):
        cdn_signed_url(path="/a", expires_at=int(time.time()) + 60)


def test_cache_control_defaults_and_settings(settings):
    assert cdn_segment_cache_control() == "public, max-age=86400, immutable"
    assert cdn_playlist_cache_control() == "public, max-age=60"
    assert cdn_cache_control(name="master.m3u8") == "public, max-age=60"
    assert cdn_cache_control(name="128k/seg_00001.m4s") == (
        "public, max-age=86400, immutable"
    )
    settings.CDN_CACHE_CONTROL_SEGMENTS = "public, max-age=31536000, immutable"
    assert cdn_cache_control(name="init.mp4") == "public, max-age=31536000, immutable"


def test_bunny_directory_token_in_the_path(settings):
    settings.CDN_ENABLED = True
    settings.CDN_BASE_URL = "https://veza.b-cdn.net"
    settings.CDN_SECURITY_KEY = "k"
    signed = cdn_signed_directory(path=PACKAGE.rstrip("/"))
    assert signed.url.startswith("https://veza.b-cdn.net/bcdn_token=HS256-")
    assert signed.url.endswith(f"&expires={signed.expires_at}{PACKAGE}")
    assert abs(signed.expires_at - time.time() - settings.CDN_TOKEN_TTL) < 5
    assert signed.query == ""
    for name in ("master.m3u8", "128k/index.m3u8", "128k/seg_00001.m4s"):
        assert cdn_verify(url=signed.file_url(name))
    outside = signed.url.replace(PACKAGE, "/hls/other/") + "master.m3u8"
    assert not cdn_verify(url=outside)


def test_cloudflare_directory_token_is_a_query_over_the_fixed_prefix(settings):
    settings.CDN_ENABLED = True
    settings.CDN_PROVIDER = "cloudflare"
    settings.CDN_BASE_URL = "https://media.veza.example"
    settings.CDN_SECURITY_KEY = "k"
    signed = cdn_signed_directory(path=PACKAGE)
    assert signed.query.startswith("verify=")
    assert cdn_verify(url=signed.file_url("128k/seg_00001.m4s"))
    with pytest.raises(CdnSigningError, match="70-character prefix"):
        cdn_signed_directory(path="/hls/short/")


def test_cloudfront_directory_gets_wildcard_cookies(settings):
    settings.CDN_ENABLED = True
    settings.CDN_PROVIDER = "cloudfront"
    settings.CDN_BASE_URL = "https://d111111abcdef8.cloudfront.net"
    settings.CDN_KEY_PAIR_ID = "K2JCJMDEHXQW5F"
    settings.CDN_PRIVATE_KEY_FILE = KEY_FILE
    signed = cdn_signed_directory(path=PACKAGE)
    assert set(signed.cookies) == {
        "CloudFront-Policy",
        "CloudFront-Signature",
        "CloudFront-Key-Pair-Id",
    }
    segment = signed.url + "128k/seg_00001.m4s"
    assert cdn_verify(url=segment, cookies=signed.cookies)
    assert not cdn_verify(url=segment)
    assert cdn_verify(url=signed.file_url("128k/seg_00001.m4s"))


def test_r2_cannot_scope_a_directory(settings):
    settings.CDN_ENABLED = True
    settings.CDN_PROVIDER = "r2"
    settings.CDN_R2_ACCOUNT_ID = "acc"
    settings.CDN_R2_ACCESS_KEY_ID = "AK"
    settings.CDN_R2_SECRET_ACCESS_KEY = "SK"
    settings.CDN_R2_BUCKET = "media"
    with pytest.raises(CdnSigningError, match="one object"):
        cdn_signed_directory(path=PACKAGE)
    signed = cdn_signed_url(path="/tracks/a.wav", expires_at=int(time.time()) + 60)
    assert signed.url.startswith(
        "https://acc.r2.cloudflarestorage.com/media/tracks/a.wav?X-Amz-Algorithm="
    )


def test_custom_domain_without_a_signer_warns(settings):
    assert "cdn.W001" not in [m.id for m in run_checks()]
    settings.AWS_S3_CUSTOM_DOMAIN = "media.veza.example"
    messages = [m for m in run_checks() if m.id == "cdn.W001"]
    assert len(messages) == 1
    assert "unsigned URLs" in messages[0].msg
    settings.AWS_CLOUDFRONT_KEY = "-----BEGIN RSA PRIVATE KEY-----"
    settings.AWS_CLOUDFRONT_KEY_ID = "K2JCJMDEHXQW5F"
    assert "cdn.W001" not in [m.id for m in run_checks()]


def test_storages_option_with_a_custom_domain_warns(settings):
    settings.STORAGES = {
        **settings.STORAGES,
        "media": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {"custom_domain": "media.veza.example"},
        },
    }
    messages = [m for m in run_checks() if m.id == "cdn.W001"]
    assert [m.msg.split(":")[0] for m in messages] == ["STORAGES['media']"]
