"""Staff pages at a laptop's width (1280 px) in a real browser: nothing clipped."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from streaming.models import HlsPackage
from tests.browser.conftest import chromium, requires_chromium
from tracks.models import Track

pytestmark = [pytest.mark.django_db(transaction=True), requires_chromium]

WIDTH = 1280
# Where the screenshots go besides the test's own directory (docs/screenshots
# when refreshed by hand: VEZA_SCREENSHOTS=docs/screenshots make test).
SCREENSHOTS = os.environ.get("VEZA_SCREENSHOTS", "")


def make_catalogue() -> HlsPackage:
    owner = get_user_model().objects.create_user("an-artist-with-a-long-name")
    track = Track.objects.create(
        owner=owner,
        title="A rather long track title, as labels like to write them (Remastered)",
        visibility="public",
        original_filename="a-rather-long-file-name-of-a-master-2024-final-v3.wav",
        mime_type="audio/wav",
        size_bytes=52_428_800,
        sha256="ab" * 32,
        duration_seconds=321.5,
        storage_key=f"tracks/x/{'ab' * 32}.wav",
    )
    ladder = [
        {"name": "64k", "bitrate": 64000},
        {"name": "128k", "bitrate": 128000},
        {"name": "256k", "bitrate": 256000},
    ]
    renditions = [
        {
            "name": rung["name"],
            "bitrate": rung["bitrate"],
            "bandwidth": rung["bitrate"] + 9000,
            "average_bandwidth": rung["bitrate"] + 4000,
            "codecs": "mp4a.40.2",
            "init_size": 765,
            "file": "media.mp4",
            # As the packager writes them: name, duration, size, offset.
            "segments": [
                ["media.mp4", 6.0, 48_000, 765 + i * 48_000] for i in range(54)
            ],
        }
        for rung in ladder
    ]
    package_settings = {"ladder": [64, 128, 256], "segment_seconds": 6, "packager": 3}
    HlsPackage.objects.create(
        track=track,
        content_hash="c" * 64,
        status="failed",
        settings=package_settings,
        error_code="decode_failed",
        error="Decoding stopped at 03:12.5: " + "invalid data in the stream; " * 12,
        attempts=3,
    )
    return HlsPackage.objects.create(
        track=track,
        content_hash="d" * 64,
        status="ready",
        settings=package_settings,
        renditions=renditions,
        files={"master.m3u8": 420},
        duration_seconds=321.5353439202999,
        segment_count=162,
        total_bytes=15_000_000,
        loudness_lufs=-13.9123,
        true_peak_dbtp=-0.98765,
        encode_seconds=5.3534392029999935,
        store_seconds=0.4187723,
        started_at=timezone.now(),
        finished_at=timezone.now(),
    )


def test_staff_pages_fit_a_laptop_screen(live_server, settings):
    get_user_model().objects.create_superuser(
        "staff", "staff@example.com", "staff-pass-123"
    )
    package = make_catalogue()
    pages = {
        "admin-index": "/admin/",
        "tracks": "/admin/tracks/track/",
        "track": f"/admin/tracks/track/{package.track_id}/change/",
        "storage-migration": "/admin/tracks/track/storage/",
        "hls-packages": "/admin/streaming/hlspackage/",
        "hls-package": f"/admin/streaming/hlspackage/{package.pk}/change/",
    }
    shots = [Path(settings.VAR_DIR)] + ([Path(SCREENSHOTS)] if SCREENSHOTS else [])
    with chromium() as browser:
        page = browser.new_page(viewport={"width": WIDTH, "height": 800})
        page.goto(f"{live_server.url}/admin/login/?next=/admin/")
        page.fill("#id_username", "staff")
        page.fill("#id_password", "staff-pass-123")
        page.click("input[type=submit]")
        page.wait_for_url("**/admin/")
        for name, path in pages.items():
            response = page.goto(live_server.url + path)
            assert response is not None
            assert response.status == 200, name
            for directory in shots:
                directory.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(directory / f"{name}.png"), full_page=True)
            # The page, and the admin's scrolling box around a list's table.
            overflow = page.evaluate(
                "() => Math.max(document.documentElement.scrollWidth"
                " - window.innerWidth, ...Array.from(document.querySelectorAll("
                "'.results'), (box) => box.scrollWidth - box.clientWidth))"
            )
            assert overflow <= 0, f"{name} is {overflow} px too wide"
        # The package's figures are shown for people, not as stored.
        page.goto(live_server.url + pages["hls-package"])
        text = page.inner_text("#content")
        assert "5.35 s" in text
        assert "5.3534392" not in text
        assert "128k: 128 kb/s" in text
        assert '"bandwidth"' not in text
        assert "6 s segments" in text
