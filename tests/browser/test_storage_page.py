"""A real browser (Playwright + Debian chromium) watches a migration in the admin."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from tests.browser.conftest import chromium, requires_chromium
from tests.s3proxy import Faults, S3Proxy
from tests.tracks.migration_helpers import make_local_tracks, start_command
from tracks.models import Track

pytestmark = [pytest.mark.django_db(transaction=True), requires_chromium]


@pytest.fixture
def browser_page():
    with chromium() as browser:
        yield browser.new_page()


def test_staff_watch_migration_progress_live(
    live_server, s3, s3_server, settings, browser_page
):
    settings.TRACK_STORAGE_BACKEND = "local"
    get_user_model().objects.create_superuser(
        "staff", "s@example.com", "staff-pass-123"
    )
    owner = get_user_model().objects.create_user("artist")
    make_local_tracks(owner, Path(settings.MEDIA_ROOT), 120, size=8 * 1024, seed=21)
    # Every request slowed down, so the run lasts long enough to watch.
    proxy = S3Proxy(
        upstream=s3_server.endpoint,
        faults=Faults(rate=1.0, kinds=("slow",), slow_seconds=0.15),
    )
    endpoint = proxy.start()
    process = start_command(
        settings, "--to", "s3", "--workers", "2", "--batch-size", "4", endpoint=endpoint
    )
    page = browser_page
    try:
        page.goto(f"{live_server.url}/admin/login/?next=/admin/tracks/track/storage/")
        page.fill("#id_username", "staff")
        page.fill("#id_password", "staff-pass-123")
        page.click("input[type=submit]")
        page.wait_for_url("**/admin/tracks/track/storage/")
        page.evaluate("window.__loadedOnce = true")
        running = page.locator("#running-runs tbody tr td:nth-child(5)")
        running.first.wait_for(timeout=30_000)
        page.wait_for_function(
            "() => /\\d+ \\/ 120/.test("
            "document.querySelector('#running-runs tbody').innerText)",
            timeout=30_000,
        )
        first = running.first.inner_text()
        page.wait_for_function(
            "(first) => { const c = document.querySelector("
            "'#running-runs tbody tr td:nth-child(5)');"
            " return c && c.innerText !== first; }",
            arg=first,
            timeout=30_000,
        )
        second = running.first.inner_text()
        assert int(second.split(" / ")[0]) > int(first.split(" / ")[0])
        # It refreshed itself: the same document, never reloaded.
        assert page.evaluate("window.__loadedOnce") is True
        page.screenshot(path=str(Path(settings.VAR_DIR) / "storage-page.png"))
        process.communicate(timeout=120)
        assert process.returncode == 0
        page.wait_for_function(
            "() => document.querySelector('#past-runs tbody')"
            ".innerText.includes('succeeded')",
            timeout=15_000,
        )
        assert "100.0% of tracks" in page.inner_text("#s3-share")
        assert Track.objects.filter(storage_backend="s3").count() == 120
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        proxy.stop()
