"""The upload page sends a file over tus in a real browser, survives a cut
network by resuming where the server stopped, and links to the player.

Playwright drives Debian's chromium against a live server: the user signs in
through the login page, adds a 12 MiB WAV to Uppy's Dashboard and starts the
upload; the network goes down after a few chunks and comes back. Pause and
resume hold the upload and go on from the server's offset too. Tasks run
inline (the immediate backend), so the last PATCH makes the track.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.audio import make_audio
from tests.browser.conftest import chromium, requires_chromium
from tracks import upload_page
from tracks.models import Track, UploadSession

pytestmark = [pytest.mark.django_db(transaction=True), requires_chromium]

MiB = 1024 * 1024
CHUNK = MiB
# The network goes down when the page asks to send the chunk at this offset.
CUT_AT = 4 * MiB
TUS_URLS = re.compile(r".*/api/v1/uploads/tus/.*")
# Where the screenshot goes besides the test's own directory (docs/screenshots
# when refreshed by hand: VEZA_SCREENSHOTS=docs/screenshots make test).
SCREENSHOTS = os.environ.get("VEZA_SCREENSHOTS", "")

PLAYER_ARGS = [
    "--autoplay-policy=no-user-gesture-required",
    "--mute-audio",
]

PLAYED_PAST_2S = (
    "() => { const a = document.getElementById('audio');"
    " return a.currentTime > 2 && !a.paused; }"
)


@pytest.fixture(scope="module")
def master(tmp_path_factory) -> Path:
    """A 12 MiB WAV: twelve 1 MiB chunks."""
    path = make_audio(tmp_path_factory.mktemp("upload-page") / "master.wav", seconds=66)
    assert path.stat().st_size > 12 * MiB
    return path


@pytest.fixture
def browser():
    with chromium(PLAYER_ARGS) as running:
        yield running


def page_state(page) -> str:
    return page.evaluate("document.getElementById('upload').dataset.state")


def wait_for_state(page, *states: str, timeout: float = 30_000) -> str:
    # Imported here: without Playwright the tests skip (tests/browser/conftest.py).
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(
            "(states) => states.includes("
            "document.getElementById('upload').dataset.state)",
            arg=list(states),
            timeout=timeout,
        )
    except PlaywrightTimeout as exc:
        results = page.evaluate("JSON.stringify(window.vezaUpload.results)")
        raise AssertionError(
            f"the page is {page_state(page)!r}, not in {states}: {results}"
        ) from exc
    return page_state(page)


def signed_in_page(context, server_url: str, console: list[str] | None = None):
    """The upload page, reached as anonymous users do: through the login.
    What the pages log goes to `console`."""
    page = context.new_page()
    if console is not None:
        page.on("console", lambda message: console.append(message.text))
    page.goto(f"{server_url}/upload/")
    assert page.url == f"{server_url}/calls/login/?next=/upload/"
    page.fill("#id_username", "alice")
    page.fill("#id_password", "alice-pass-123")
    page.click("button[type=submit]")
    page.wait_for_url(f"{server_url}/upload/")
    wait_for_state(page, "ready")
    assert page.inner_text("h1") == "Upload a track"
    return page


class Network:
    """Every PATCH the page sends (its Upload-Offset, its body's size and
    whether it went through); the network goes down when the page asks to
    send the chunk at CUT_AT, and stays down until `restore()`."""

    def __init__(self, context, page) -> None:
        self.context = context
        self.down = False
        self.cut = False
        self.patches: list[tuple[int, int, str]] = []
        page.route(TUS_URLS, self.route)

    def route(self, route) -> None:
        request = route.request
        if request.method != "PATCH":
            route.continue_()
            return
        offset = int(request.headers["upload-offset"])
        body = len(request.post_data_buffer or b"")
        if offset >= CUT_AT and not self.cut:
            self.cut = self.down = True
            self.context.set_offline(True)
        if self.down:
            self.patches.append((offset, body, "refused"))
            route.abort("internetdisconnected")
            return
        self.patches.append((offset, body, "sent"))
        route.continue_()

    def restore(self) -> None:
        self.down = False
        self.context.set_offline(False)

    def sent(self, since: int = 0) -> list[tuple[int, int]]:
        return [(o, b) for o, b, outcome in self.patches[since:] if outcome == "sent"]


def start_upload(page, master: Path, *, title: str, visibility: str) -> None:
    page.fill("#title", title)
    page.select_option("#visibility", visibility)
    page.locator("input.uppy-Dashboard-input").first.set_input_files(str(master))
    page.get_by_role("button", name=re.compile(r"^Upload")).click()


def wait_for_the_cut(page, size: int) -> UploadSession:
    """The page waits for the network; the server holds what came."""
    page.wait_for_function("() => navigator.onLine === false", timeout=30_000)
    page.wait_for_timeout(1500)  # the retries that would run meanwhile
    session = UploadSession.objects.get()
    assert session.status == "receiving"
    assert 0 < session.offset < session.length == size
    assert session.offset == CUT_AT
    assert page_state(page) == "uploading"
    return session


def assert_resumed(network: Network, *, since: int, offset: int, size: int) -> None:
    """What went after the cut started at the server's offset, not at 0."""
    resumed = network.sent(since)
    assert resumed, network.patches
    assert resumed[0][0] == offset
    assert all(o >= offset for o, _ in resumed)
    assert sum(b for _, b in resumed) == size - offset < size
    # Every byte went once, but for the chunk refused at the cut.
    assert sum(b for _, b in network.sent()) == size
    assert all(b <= CHUNK for _, b in network.sent())


@pytest.fixture
def small_chunks(monkeypatch) -> None:
    # 1 MiB so the cut falls well inside the file; the page's default is 5.
    monkeypatch.setattr(upload_page, "CHUNK_BYTES", CHUNK)


@pytest.mark.usefixtures("user", "small_chunks")
def test_an_upload_cut_by_the_network_resumes_and_plays(
    live_server, browser, master, settings
):
    # Package the track for HLS as it is made, so the player can play it.
    settings.HLS_PACKAGE_ON_UPLOAD = True
    size = master.stat().st_size
    context = browser.new_context(viewport={"width": 1024, "height": 900})
    console: list[str] = []
    page = signed_in_page(context, live_server.url, console)
    network = Network(context, page)

    start_upload(page, master, title="Resumed master", visibility="public")
    session = wait_for_the_cut(page, size)
    since = len(network.patches)

    # Back online: the page goes on by itself from the server's offset.
    network.restore()
    assert wait_for_state(page, "done", "failed", "stopped", timeout=90_000) == (
        "done"
    ), page.inner_text("#results")
    assert_resumed(network, since=since, offset=CUT_AT, size=size)

    session.refresh_from_db()
    assert (session.status, session.offset) == ("ready", size)
    assert session.track_id is not None
    track = Track.objects.get(pk=session.track_id)
    assert (track.title, track.visibility, track.size_bytes) == (
        "Resumed master",
        "public",
        size,
    )
    assert track.original_filename == "master.wav"

    link = page.locator("#results a.player-link")
    assert link.get_attribute("href") == f"/tracks/{track.pk}/play"
    assert link.inner_text() == "Play “Resumed master”"
    file_id = page.evaluate("window.vezaUpload.uppy.getFiles()[0].id")
    assert page.evaluate("window.vezaUpload.results") == {
        file_id: {
            "status": "ready",
            "uploadId": str(session.pk),
            "track": str(track.pk),
        }
    }
    # Nothing was refused by the page's Content-Security-Policy.
    assert not [m for m in console if "Content Security Policy" in m], console

    shots = [Path(settings.VAR_DIR)] + ([Path(SCREENSHOTS)] if SCREENSHOTS else [])
    for directory in shots:
        directory.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(directory / "upload-page.png"), full_page=True)

    # The track plays on the page the link leads to.
    link.click()
    page.wait_for_url(f"{live_server.url}/tracks/{track.pk}/play")
    assert page.inner_text("#track-title") == "Resumed master"
    page.wait_for_function(
        "() => window.vezaPlayer && window.vezaPlayer.masterUrl", timeout=45_000
    )
    page.evaluate("document.getElementById('audio').play()")
    page.wait_for_function(PLAYED_PAST_2S, timeout=45_000)
    context.close()


@pytest.mark.usefixtures("user", "small_chunks")
def test_pause_holds_the_upload_and_resume_goes_on_from_the_server_offset(
    live_server, browser, master
):
    size = master.stat().st_size
    context = browser.new_context()
    page = signed_in_page(context, live_server.url)
    network = Network(context, page)

    start_upload(page, master, title="", visibility="private")
    session = wait_for_the_cut(page, size)
    since = len(network.patches)

    # Paused while offline, it stays paused when the network is back.
    toggle = page.locator("[data-cy=togglePauseResume]")
    assert toggle.get_attribute("aria-label") == "Pause"
    toggle.click()
    network.restore()
    page.wait_for_function("() => navigator.onLine === true")
    page.wait_for_timeout(1500)
    assert network.sent(since) == []
    session.refresh_from_db()
    assert (session.status, session.offset) == ("receiving", CUT_AT)

    assert toggle.get_attribute("aria-label") == "Resume"
    toggle.click()
    assert wait_for_state(page, "done", "failed", "stopped", timeout=60_000) == (
        "done"
    ), page.inner_text("#results")
    assert_resumed(network, since=since, offset=CUT_AT, size=size)
    session.refresh_from_db()
    assert session.track_id is not None
    track = Track.objects.get(pk=session.track_id)
    # No title given: the file's name; private by default.
    assert (track.title, track.visibility) == ("master", "private")
    assert page.locator("#results a.player-link").inner_text() == "Play “master”"
    context.close()


@pytest.mark.usefixtures("user")
def test_a_file_that_is_not_audio_shows_the_error_code_and_message(
    live_server, browser, tmp_path
):
    noise = tmp_path / "noise.wav"
    noise.write_bytes(os.urandom(300_000))
    context = browser.new_context()
    page = signed_in_page(context, live_server.url)

    start_upload(page, noise, title="Noise", visibility="private")
    assert wait_for_state(page, "done", "failed", "stopped") == "failed"
    item = page.locator("#results li")
    assert item.get_attribute("data-status") == "failed"
    assert item.locator("code").inner_text() == "not_audio"
    session = UploadSession.objects.get()
    assert session.status == "failed"
    assert session.error_message in item.inner_text()
    assert page.locator("#results a").count() == 0
    assert not Track.objects.exists()
    context.close()
