"""The pages people see, as they see them: screenshots and an axe-core scan.

Playwright drives Debian's chromium. Each page, in each state a person meets
it in (the player loading, playing and refused; the call page idle, ringing
and in a call; the sign-in and upload pages), is scanned by axe-core 4.14
(vendored in tests/browser/vendor/axe-core, injected before the page's own
scripts, so the pages' CSP is untouched) at 1280 and 360 px wide in the
light and the dark scheme, and must show no violation of serious or
critical impact. It is photographed at each width and scheme; at 360 px
nothing may be wider than the screen.

The screenshots go to the test's VAR_DIR and, with VEZA_SCREENSHOTS set, to
that directory too (docs/screenshots/pages when refreshed by hand), with
axe.json: every violation found, whatever its impact.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from django.test import Client

from streaming.models import PackageStatus
from tests.audio import make_song
from tests.browser.conftest import chromium, requires_chromium
from tests.browser.test_call_page import CALL_ARGS, logged_in_page
from tests.browser.test_player_page import PLAYER_ARGS, blog_embedding
from tests.streaming.conftest import package_track
from tests.webrtc.servers import start_daphne

pytestmark = [pytest.mark.django_db(transaction=True), requires_chromium]

AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
SCREENSHOTS = os.environ.get("VEZA_SCREENSHOTS", "")
WIDTHS = [(1280, 800), (360, 740)]
SCHEMES = ["light", "dark"]
BLOCKING = {"serious", "critical"}

AXE_RUN = """async () => {
  const result = await axe.run(document, {resultTypes: ['violations']});
  return result.violations.map((v) => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map((n) => n.target.join(' ') + ': ' + n.failureSummary),
  }));
}"""

TWO_FRAMES = (
    "() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))"
)
# A change of scheme starts colour transitions (Uppy's buttons have them):
# scan and photograph what they end on. The loading shimmer never ends.
SETTLED = """() => Promise.all(document.getAnimations()
  .filter((a) => a.effect.getComputedTiming().iterations !== Infinity)
  .map((a) => a.finished.catch(() => null)))"""


class Looks:
    """Photographs and scans pages; keeps every violation for axe.json."""

    def __init__(self, directories: list[Path]) -> None:
        self.directories = directories
        for directory in directories:
            directory.mkdir(parents=True, exist_ok=True)
        self.found: dict[str, list[dict]] = {}
        self.shots: list[str] = []

    def look(self, page, name: str) -> None:
        for scheme in SCHEMES:
            page.emulate_media(color_scheme=scheme)
            violations: list[dict] = []
            for width, height in WIDTHS:
                page.set_viewport_size({"width": width, "height": height})
                page.evaluate(TWO_FRAMES)  # the waveform redraws at its new size
                page.evaluate(SETTLED)
                found = page.evaluate(AXE_RUN)
                self.found[f"{name}-{width}-{scheme}"] = found
                violations += found
                wide = page.evaluate("document.documentElement.scrollWidth")
                assert wide <= width, (name, width, wide)
                shot = f"{name}-{width}-{scheme}.png"
                for directory in self.directories:
                    page.screenshot(path=str(directory / shot), full_page=True)
                self.shots.append(shot)
            # Asserted once photographed: the picture shows what failed.
            blocking = [v for v in violations if v["impact"] in BLOCKING]
            assert not blocking, (name, scheme, blocking)
        page.emulate_media(color_scheme="light")

    def photograph(self, page, name: str) -> None:
        """One picture as it is, for what is not the pages' own (an embed)."""
        for directory in self.directories:
            page.screenshot(path=str(directory / f"{name}.png"))
        self.shots.append(f"{name}.png")

    def write_report(self) -> None:
        # One report for the three tests: each adds its pages.
        for directory in self.directories:
            report = directory / "axe.json"
            found = json.loads(report.read_text()) if report.exists() else {}
            found.update(self.found)
            report.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")


@pytest.fixture
def looks(settings):
    directories = [Path(settings.VAR_DIR) / "screenshots"]
    if SCREENSHOTS:
        directories.append(Path(SCREENSHOTS))
    recorder = Looks(directories)
    yield recorder
    recorder.write_report()


def with_axe(context):
    # An init script runs before the page's scripts and outside its CSP.
    context.add_init_script(path=str(AXE))
    return context


def test_the_player_in_each_state(live_server, auth_client, user, tmp_path, looks):
    track, package = package_track(
        auth_client,
        make_song(tmp_path / "song.wav", seconds=60),
        title="Night Drive",
        visibility="public",
    )
    package.refresh_from_db()
    assert package.status == PackageStatus.READY, package.error
    private, _ = package_track(
        auth_client,
        make_song(tmp_path / "demo.wav", seconds=20),
        title="Demo",
        visibility="private",
    )
    url = f"{live_server.url}/tracks/{track.pk}/play"
    with chromium(PLAYER_ARGS) as browser:
        context = with_axe(browser.new_context())

        # Loading: the package is still being built.
        page = context.new_page()
        page.route(
            "**/api/v1/tracks/*/hls",
            lambda route: route.fulfill(
                content_type="application/json",
                body=json.dumps({"status": "processing", "master_url": None}),
            ),
        )
        page.goto(url)
        page.wait_for_function(
            "() => document.getElementById('player').dataset.state === 'preparing'"
        )
        looks.look(page, "player-loading")
        page.close()

        # Playing, with progress on the waveform.
        page = context.new_page()
        page.goto(url)
        page.wait_for_function(
            "() => window.vezaPlayer.waveform.status === 'ready'", timeout=20_000
        )
        box = page.locator("#waveform").bounding_box()
        assert box is not None
        page.mouse.click(box["x"] + 0.4 * box["width"], box["y"] + box["height"] / 2)
        page.click("#play")
        page.wait_for_function(
            "() => { const a = document.getElementById('audio');"
            " return !a.paused && a.currentTime > 24.5; }",
            timeout=30_000,
        )
        looks.look(page, "player-playing")
        assert page.evaluate("window.vezaPlayer.state") == "playing"
        page.close()

        # Embedded in a blog post on another site, in a 400 by 200 frame.
        page = context.new_page()
        page.set_viewport_size({"width": 480, "height": 300})
        with blog_embedding(url) as blog:
            page.goto(blog)
            inner = next(f for f in page.frames if f.url == url)
            inner.wait_for_function(
                "() => window.vezaPlayer.waveform.status === 'ready'", timeout=20_000
            )
            looks.photograph(page, "player-embedded-400x200")
            # Everything but the status line fits the frame without scrolling.
            bottom = inner.evaluate(
                "document.querySelector('.normalise').getBoundingClientRect().bottom"
            )
            assert bottom <= 200
        page.close()

        # Someone else's private track.
        page = context.new_page()
        response = page.goto(f"{live_server.url}/tracks/{private.pk}/play")
        assert response is not None
        assert response.status == 404
        looks.look(page, "player-not-found")
        context.close()
    assert len(looks.shots) == 13


def test_the_call_page_idle_ringing_and_in_a_call(
    settings, tmp_path, user, other_user, looks
):
    server = start_daphne(settings, tmp_path)
    try:
        with chromium(CALL_ARGS) as browser:
            alice = logged_in_page(browser, server, user, init_script=AXE)
            bob = logged_in_page(browser, server, other_user, init_script=AXE)
            looks.look(alice, "calls-idle")

            alice.check("#video")
            alice.select_option("#callee", str(other_user.pk))
            alice.click("#call")
            bob.locator("#answer").wait_for(state="visible", timeout=15_000)
            alice.wait_for_function(
                "() => window.vezaCalls.state === 'ringing'", timeout=10_000
            )
            looks.look(alice, "calls-ringing")
            looks.look(bob, "calls-incoming")

            bob.click("#answer")
            for page in (alice, bob):
                page.wait_for_function(
                    "() => window.vezaCalls.state === 'connected'", timeout=30_000
                )
            # The fake camera's picture has arrived on both sides.
            alice.wait_for_function(
                "() => document.getElementById('remote').videoWidth > 0"
                " && document.getElementById('local').videoWidth > 0",
                timeout=15_000,
            )
            assert alice.inner_text("#status") == "In a call"
            looks.look(alice, "calls-in-a-call")
    finally:
        server.stop()
    assert len(looks.shots) == 16


def test_the_sign_in_and_upload_pages(live_server, user, looks):
    with chromium() as browser:
        context = with_axe(browser.new_context())
        page = context.new_page()
        page.goto(f"{live_server.url}/upload/")
        looks.look(page, "sign-in")
        page.fill("#id_username", "alice")
        page.fill("#id_password", "alice-pass-123")
        page.click("button[type=submit]")
        page.wait_for_url(f"{live_server.url}/upload/")
        page.wait_for_function(
            "() => document.getElementById('upload').dataset.state === 'ready'"
        )
        looks.look(page, "upload")
        context.close()
    assert len(looks.shots) == 8
    # A wrong password is said on the page, not only by its status.
    refused = Client().post("/calls/login/", {"username": "alice", "password": "x"})
    assert refused.status_code == 200
    assert 'class="error"' in refused.content.decode()
