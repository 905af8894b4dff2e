"""The player page plays a packaged track over HLS in a real browser.

Playwright drives Debian's chromium against a live server: the page asks the
HLS API for the master URL, hls.js fetches the playlists and fMP4 segments
from the origin, and the audio element plays.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.test import Client

from streaming.models import HlsPackage, PackageStatus
from tests.audio import make_song
from tests.browser.conftest import chromium, requires_chromium
from tests.streaming.conftest import package_track, packaged, song_file  # noqa: F401
from tests.streaming.test_hls_client import nginx, packaged_on_s3  # noqa: F401

pytestmark = [pytest.mark.django_db(transaction=True), requires_chromium]

PLAYER_ARGS = [
    # Let scripts start playback without a click (embeds with ?autoplay=1).
    "--autoplay-policy=no-user-gesture-required",
    # Silent on a developer's machine. Without a sound card (CI) chromium
    # plays into a fake sink whose clock advances all the same.
    "--mute-audio",
]

PLAYED_PAST_2S = (
    "() => { const a = document.getElementById('audio');"
    " return a.currentTime > 2 && !a.paused; }"
)


@pytest.fixture
def browser():
    with chromium(PLAYER_ARGS) as running:
        yield running


@pytest.fixture
def public_track(auth_client, song_file: Path):  # noqa: F811
    # A transactional test: the upload's on-commit hook queues the package
    # task, which the test settings' immediate backend runs at once.
    track, package = package_track(
        auth_client, song_file, title="Browser Song", visibility="public"
    )
    package.refresh_from_db()
    assert package.status == PackageStatus.READY, package.error
    return track


def watch_requests(page) -> list[str]:
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    return urls


def test_the_page_plays_the_track_over_hls(live_server, browser, public_track):
    page = browser.new_page()
    urls = watch_requests(page)
    page.goto(f"{live_server.url}/tracks/{public_track.pk}/play")
    assert page.inner_text("#track-title") == "Browser Song"
    assert page.inner_text("#duration") == "0:14"
    page.wait_for_function(
        "() => window.vezaPlayer && window.vezaPlayer.masterUrl", timeout=15_000
    )
    assert page.evaluate("window.vezaPlayer.engine") == "hls.js"
    page.evaluate("document.getElementById('audio').play()")
    page.wait_for_function(PLAYED_PAST_2S, timeout=30_000)
    assert page.evaluate("document.getElementById('player').dataset.state") in (
        "playing",
        "ready",
    )
    # hls.js fetched the master, a media playlist and fMP4 segments, all
    # from our origin (no CDN in tests), with a path token.
    master = [u for u in urls if u.endswith("/master.m3u8")]
    segments = [u for u in urls if u.endswith("/media.mp4")]
    assert master, urls
    assert segments, urls
    assert all(u.startswith(f"{live_server.url}/origin/hls/") for u in segments)
    # The chosen rung is shown, e.g. "128 kb/s".
    page.wait_for_function(
        "() => /^\\d+ kb\\/s$/.test(document.getElementById('bitrate').textContent)",
        timeout=10_000,
    )
    kbps = int(page.inner_text("#bitrate").split()[0])
    assert kbps in {64, 128, 256}
    assert page.evaluate("window.vezaPlayer.bitrateKbps") == kbps
    # Nothing failed on the way.
    fatal = page.evaluate("window.vezaPlayer.errors.filter(e => e.fatal)")
    assert fatal == []


def watch_media(page) -> list[tuple[str, str | None, int]]:
    """(url, Range header, status) of every response to a rung's media file."""
    seen: list[tuple[str, str | None, int]] = []

    def on_response(response) -> None:
        if response.url.endswith("/media.mp4"):
            range_header = response.request.headers.get("range")
            seen.append((response.url, range_header, response.status))

    page.on("response", on_response)
    return seen


def test_playing_seeking_and_switching_rungs_fetch_byte_ranges_only(
    live_server, browser, public_track
):
    """hls.js reads each rung's one file by the playlist's byte ranges: the
    first play, a seek and a switch to another rung never fetch a whole file."""
    page = browser.new_page()
    media = watch_media(page)
    page.goto(f"{live_server.url}/tracks/{public_track.pk}/play")
    page.wait_for_function(
        "() => window.vezaPlayer && window.vezaPlayer.masterUrl", timeout=15_000
    )
    page.evaluate("document.getElementById('audio').play()")
    page.wait_for_function(PLAYED_PAST_2S, timeout=30_000)
    first_rung = page.evaluate("window.vezaPlayer.level")
    # Another rung, now (hls.js flushes the buffer and loads it from here).
    other = 0 if first_rung != 0 else 2
    page.evaluate(f"window.vezaPlayer.hls().currentLevel = {other}")
    page.wait_for_function(f"() => window.vezaPlayer.level === {other}", timeout=15_000)
    before_seek = len(media)
    page.evaluate(
        "() => { const a = document.getElementById('audio');"
        " a.currentTime = a.duration * 0.75; }"
    )
    page.wait_for_function(
        "() => { const a = document.getElementById('audio');"
        " return a.currentTime > a.duration * 0.75 + 0.5 && !a.paused; }",
        timeout=20_000,
    )
    assert len(media) > before_seek, "the seek fetched nothing"
    rungs = {url.split("/")[-2] for url, _, _ in media}
    assert len(rungs) >= 2, media
    for url, range_header, status in media:
        assert range_header is not None, f"a whole-file GET of {url}"
        assert range_header.startswith("bytes="), range_header
        assert status == 206, (url, range_header, status)
    assert page.evaluate("window.vezaPlayer.errors.filter(e => e.fatal)") == []
    page.close()


@contextlib.contextmanager
def blog_embedding(player_url: str) -> Iterator[str]:
    """A blog post that embeds `player_url` in an iframe, on another site.

    Served by a real server on 127.0.0.1 (the player is on localhost: another
    site). A loopback server, not a Playwright route: chromium's local network
    access checks block a page it takes for public from framing localhost.
    """
    body = (
        "<!doctype html><title>Blog</title><h1>A post</h1>"
        f'<iframe id="player" src="{player_url}" allow="autoplay"'
        ' title="Player" width="400" height="200"></iframe>'
    ).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/post"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_the_page_plays_inside_an_iframe_of_another_site(
    live_server, browser, public_track
):
    embed = f"{live_server.url}/tracks/{public_track.pk}/play"
    assert embed.startswith("http://localhost:")
    page = browser.new_page()
    urls = watch_requests(page)
    with blog_embedding(embed) as blog:
        page.goto(blog)
        frame = page.frame_locator("#player")
        assert frame.locator("#track-title").inner_text() == "Browser Song"
        inner = next(f for f in page.frames if f.url == embed)
        inner.wait_for_function(
            "() => window.vezaPlayer && window.vezaPlayer.masterUrl", timeout=15_000
        )
        inner.evaluate("document.getElementById('audio').play()")
        inner.wait_for_function(PLAYED_PAST_2S, timeout=30_000)
    assert any(u.endswith("/media.mp4") for u in urls)


def test_the_page_says_preparing_until_the_package_is_ready(
    live_server, browser, public_track
):
    page = browser.new_page()
    answers: list[str] = []

    def api(route):
        # The first two answers say the package is still being built; then
        # the real API answers.
        if len(answers) < 2:
            answers.append("processing")
            route.fulfill(
                content_type="application/json",
                body=json.dumps(
                    {
                        "status": "processing",
                        "master_url": None,
                        "expires_at": None,
                        "source": None,
                        "loudness": None,
                    }
                ),
            )
        else:
            answers.append("real")
            route.continue_()

    page.route("**/api/v1/tracks/*/hls", api)
    page.goto(f"{live_server.url}/tracks/{public_track.pk}/play?autoplay=1")
    page.wait_for_function(
        "() => document.getElementById('status').textContent === 'Preparing…'",
        timeout=10_000,
    )
    assert page.evaluate("document.getElementById('player').dataset.state") == (
        "preparing"
    )
    # While it waits: the waveform shimmers and the play button is off.
    assert page.get_attribute("#waveform", "data-state") == "loading"
    assert page.is_disabled("#play")
    # ?autoplay=1 starts playing on its own once the URL arrives.
    page.wait_for_function(PLAYED_PAST_2S, timeout=45_000)
    assert answers[:3] == ["processing", "processing", "real"]
    assert page.evaluate("window.vezaPlayer.polls") == 2


def test_a_private_track_plays_for_its_owner_session_only(
    live_server,
    browser,
    user,
    auth_client,
    song_file: Path,  # noqa: F811
):
    track, package = package_track(
        auth_client, song_file, title="Private Song", visibility="private"
    )
    package.refresh_from_db()
    assert package.status == PackageStatus.READY, package.error
    url = f"{live_server.url}/tracks/{track.pk}/play"

    stranger = browser.new_page()
    response = stranger.goto(url)
    assert response is not None
    assert response.status == 404
    assert "Private Song" not in stranger.content()

    client = Client()
    client.force_login(user)
    context = browser.new_context()
    context.add_cookies(
        [
            {
                "name": "sessionid",
                "value": client.cookies["sessionid"].value,
                "url": live_server.url,
            }
        ]
    )
    page = context.new_page()
    urls = watch_requests(page)
    page.goto(url)
    assert page.inner_text("#track-title") == "Private Song"
    # The API call carries the session cookie (credentials: "same-origin").
    page.wait_for_function(
        "() => window.vezaPlayer && window.vezaPlayer.masterUrl", timeout=15_000
    )
    page.evaluate("document.getElementById('audio').play()")
    page.wait_for_function(PLAYED_PAST_2S, timeout=30_000)
    assert any(u.endswith("/media.mp4") for u in urls)
    context.close()


def test_the_player_evens_out_loudness_and_a_listener_can_turn_it_off(
    live_server, browser, public_track
):
    # A quiet master: 6 dB under the -14 LUFS target, with room to its peak.
    HlsPackage.objects.filter(track=public_track).update(
        loudness_lufs=-20.0, true_peak_dbtp=-8.0
    )
    page = browser.new_page()
    page.goto(f"{live_server.url}/tracks/{public_track.pk}/play")
    page.wait_for_function(
        "() => window.vezaPlayer && window.vezaPlayer.masterUrl", timeout=15_000
    )
    assert page.evaluate("window.vezaPlayer.gainDb") == 6.0
    assert page.is_checked("#normalise")
    page.evaluate("document.getElementById('audio').play()")
    page.wait_for_function(PLAYED_PAST_2S, timeout=30_000)
    # The Web Audio gain node after the element carries the API's gain.
    expected = 10 ** (6.0 / 20)
    assert page.evaluate("window.vezaPlayer.gainNodeValue()") == pytest.approx(
        expected, rel=1e-3
    )
    # Off: unity gain at once, and still off on the next visit.
    page.uncheck("#normalise")
    assert page.evaluate("window.vezaPlayer.gainNodeValue()") == 1
    page.reload()
    page.wait_for_function(
        "() => window.vezaPlayer && window.vezaPlayer.masterUrl", timeout=15_000
    )
    assert not page.is_checked("#normalise")
    assert page.evaluate("window.vezaPlayer.gain") == 1
    page.close()


WAVEFORM_READY = (
    "() => window.vezaPlayer && window.vezaPlayer.waveform.status === 'ready'"
    " && document.getElementById('audio').readyState >= 1"
)

# The colour of the waveform's middle row at a fraction of its width, taken
# at the centre of the bar there (bars are 3 CSS px, one of them a gap).
PIXEL_AT = """(fraction) => {
  const canvas = document.querySelector('#waveform canvas');
  const ratio = canvas.width / canvas.getBoundingClientRect().width;
  const bar = Math.floor(fraction * canvas.width / ratio / 3);
  const x = Math.round((bar * 3 + 1) * ratio);
  const context = canvas.getContext('2d');
  const data = context.getImageData(x, canvas.height / 2, 1, 1).data;
  return Array.from(data);
}"""


def record_seeks(page) -> None:
    # Where each seek landed, read when it lands: playback moves on after.
    page.evaluate(
        "() => { window.seeks = []; const a = document.getElementById('audio');"
        " a.addEventListener('seeked', () => window.seeks.push(a.currentTime)); }"
    )


def waveform_point(page, fraction: float) -> tuple[float, float]:
    box = page.locator("#waveform").bounding_box()
    assert box is not None
    return box["x"] + fraction * box["width"], box["y"] + box["height"] / 2


def test_the_waveform_shows_progress_and_a_click_at_75_percent_seeks_there(
    live_server, browser, public_track
):
    page = browser.new_page(viewport={"width": 800, "height": 400})
    page.goto(f"{live_server.url}/tracks/{public_track.pk}/play")
    assert page.inner_text("#track-owner") == "alice"
    page.wait_for_function(WAVEFORM_READY, timeout=20_000)
    # The peaks the API answers, drawn: every 3 px bar has a height.
    waveform = Client().get(f"/api/v1/tracks/{public_track.pk}/waveform").json()
    assert page.evaluate("window.vezaPlayer.waveform.points") == waveform["length"]
    assert page.get_attribute("#waveform", "data-state") == "ready"
    unplayed = page.evaluate(PIXEL_AT, 0.5)
    assert unplayed[3] == 255  # painted, not the gap or the background

    page.click("#play")
    page.wait_for_function(PLAYED_PAST_2S, timeout=30_000)
    assert page.get_attribute("#play", "aria-label") == "Pause"
    record_seeks(page)
    duration = page.evaluate("window.vezaPlayer.duration()")
    assert duration == pytest.approx(14, abs=0.2)
    page.mouse.click(*waveform_point(page, 0.75))
    page.wait_for_function("() => window.seeks.length === 1", timeout=10_000)
    landed = page.evaluate("window.seeks[0]") / duration
    assert landed == pytest.approx(0.75, abs=0.02)
    # Played up to there: the bar at 50 % has the played colour, the one at
    # 95 % still the other.
    played = page.evaluate(PIXEL_AT, 0.5)
    ahead = page.evaluate(PIXEL_AT, 0.95)
    assert played[3] == ahead[3] == 255
    assert played[:3] != ahead[:3]
    assert played[:3] != unplayed[:3]
    # The slider says where playback is, in words.
    value = int(page.get_attribute("#waveform", "aria-valuenow") or -1)
    assert 10 <= value <= 14
    assert page.get_attribute("#waveform", "aria-valuetext").endswith(" of 0:14")
    assert page.evaluate("window.vezaPlayer.errors.filter(e => e.fatal)") == []
    page.close()


def test_a_drag_on_the_waveform_seeks_once_where_it_is_let_go(
    live_server, browser, public_track
):
    page = browser.new_page(viewport={"width": 800, "height": 400})
    page.goto(f"{live_server.url}/tracks/{public_track.pk}/play")
    page.wait_for_function(WAVEFORM_READY, timeout=20_000)
    record_seeks(page)
    page.mouse.move(*waveform_point(page, 0.2))
    page.mouse.down()
    page.mouse.move(*waveform_point(page, 0.4), steps=5)
    page.mouse.move(*waveform_point(page, 0.6), steps=5)
    # While the button is held nothing seeks; the bars show where it would.
    assert page.evaluate("document.getElementById('audio').currentTime") == 0
    page.mouse.up()
    page.wait_for_function("() => window.seeks.length >= 1", timeout=10_000)
    page.wait_for_timeout(300)
    seeks = page.evaluate("window.seeks")
    assert len(seeks) == 1, seeks
    duration = page.evaluate("window.vezaPlayer.duration()")
    assert seeks[0] / duration == pytest.approx(0.6, abs=0.02)
    page.close()


def test_the_keyboard_plays_pauses_and_steps_through_the_track(
    live_server, browser, public_track
):
    page = browser.new_page()
    page.goto(f"{live_server.url}/tracks/{public_track.pk}/play")
    page.wait_for_function(WAVEFORM_READY, timeout=20_000)
    # Tab order: the play button, then the waveform slider.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "play"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "waveform"
    assert page.get_attribute("#waveform", "role") == "slider"
    at = "document.getElementById('audio').currentTime"
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    page.wait_for_function(f"() => Math.abs({at} - 10) < 0.01", timeout=5_000)
    page.wait_for_function(
        "() => document.getElementById('waveform')"
        ".getAttribute('aria-valuetext') === '0:10 of 0:14'",
        timeout=5_000,
    )
    page.keyboard.press("ArrowLeft")
    assert page.evaluate(at) == pytest.approx(5, abs=0.01)
    # Page Up/Down move a tenth of the track; End and Home its ends.
    duration = page.evaluate("window.vezaPlayer.duration()")
    page.keyboard.press("PageUp")
    assert page.evaluate(at) == pytest.approx(5 + duration / 10, abs=0.01)
    page.keyboard.press("PageDown")
    assert page.evaluate(at) == pytest.approx(5, abs=0.01)
    page.keyboard.press("End")
    assert page.evaluate(at) == pytest.approx(duration, abs=0.05)
    page.keyboard.press("Home")
    assert page.evaluate(at) == pytest.approx(0, abs=0.01)
    # Space plays and pauses from the slider as from anywhere on the page.
    # (The label follows the element's play and pause events, which come
    # a moment after the call that changes `paused`.)
    label = "(label) => document.getElementById('play').ariaLabel === label"
    page.keyboard.press(" ")
    page.wait_for_function(label, arg="Pause", timeout=10_000)
    assert not page.evaluate("document.getElementById('audio').paused")
    page.keyboard.press(" ")
    page.wait_for_function(label, arg="Play", timeout=5_000)
    assert page.evaluate("document.getElementById('audio').paused")
    # On the checkbox, space is the checkbox's own.
    page.focus("#normalise")
    page.keyboard.press(" ")
    assert not page.is_checked("#normalise")
    assert page.evaluate("document.getElementById('audio').paused")
    page.close()


@pytest.fixture
def expiring_track(auth_client, settings, tmp_path):
    """A 2-minute track whose URLs last 5 s. The player buffers at most 60 s
    ahead, so a seek to 90 s after 6 s asks for segments with a token that
    has expired (403 at the origin)."""
    settings.HLS_URL_TTL = 5
    track, package = package_track(
        auth_client, make_song(tmp_path / "long.wav", seconds=120), visibility="public"
    )
    package.refresh_from_db()
    assert package.status == PackageStatus.READY, package.error
    return track


def refusals(page) -> list[str]:
    refused: list[str] = []
    page.on(
        "response",
        lambda response: (
            refused.append(response.url) if response.status == 403 else None
        ),
    )
    return refused


def player_state(page) -> str:
    return page.evaluate(
        "JSON.stringify({state: vezaPlayer.state, reloads: vezaPlayer.reloads,"
        " errors: vezaPlayer.errors, at: document.getElementById('audio')"
        ".currentTime, paused: document.getElementById('audio').paused,"
        " url: vezaPlayer.masterUrl, seeks: window.seeks})"
    )


def test_an_expired_url_is_replaced_and_playback_goes_on_from_the_seek(
    live_server, browser, expiring_track
):
    page = browser.new_page()
    refused = refusals(page)
    urls = watch_requests(page)
    page.goto(f"{live_server.url}/tracks/{expiring_track.pk}/play")
    page.wait_for_function(WAVEFORM_READY, timeout=20_000)
    first = page.evaluate("window.vezaPlayer.masterUrl")
    page.wait_for_timeout(6_000)
    record_seeks(page)
    page.mouse.click(*waveform_point(page, 0.75))
    page.click("#play")
    try:
        page.wait_for_function(
            "() => { const a = document.getElementById('audio');"
            " return !a.paused && a.currentTime > 91; }",
            timeout=30_000,
        )
    except Exception as exc:
        raise AssertionError(f"{player_state(page)} first={first}") from exc
    assert refused, "the old token was never refused"
    assert all("/origin/hls/" in url for url in refused)
    # The page asked the API again and carried on from where it was sent.
    assert page.evaluate("window.vezaPlayer.masterUrl") != first
    api = [u for u in urls if u.endswith(f"/api/v1/tracks/{expiring_track.pk}/hls")]
    assert len(api) >= 2, api
    assert page.evaluate("window.vezaPlayer.errors.filter(e => e.fatal)") == []
    assert page.evaluate("window.seeks[0]") == pytest.approx(90, abs=2.4)
    page.close()


def test_a_paused_autoplay_embed_stays_paused_where_it_was_sent_through_a_new_url(
    live_server, browser, expiring_track
):
    page = browser.new_page()
    refused = refusals(page)
    page.goto(f"{live_server.url}/tracks/{expiring_track.pk}/play?autoplay=1")
    page.wait_for_function(
        "() => { const a = document.getElementById('audio');"
        " return !a.paused && a.currentTime > 1; }",
        timeout=30_000,
    )
    first = page.evaluate("window.vezaPlayer.masterUrl")
    page.click("#play")  # pause
    assert page.evaluate("document.getElementById('audio').paused")
    page.wait_for_timeout(6_000)
    page.mouse.click(*waveform_point(page, 0.75))
    try:
        page.wait_for_function(
            "(first) => window.vezaPlayer.masterUrl !== first"
            " && window.vezaPlayer.state === 'ready'"
            " && document.getElementById('audio').readyState >= 1",
            arg=first,
            timeout=30_000,
        )
    except Exception as exc:
        raise AssertionError(f"{player_state(page)} first={first}") from exc
    assert refused, "the old token was never refused"
    page.wait_for_timeout(1_000)
    # Still paused (?autoplay=1 started the first URL only), at the seek.
    assert page.evaluate("document.getElementById('audio').paused")
    at = page.evaluate("document.getElementById('audio').currentTime")
    assert at == pytest.approx(90, abs=2.4)
    assert page.inner_text("#position") == "1:30"
    assert page.get_attribute("#play", "aria-label") == "Play"
    page.close()


HLS_JS = (
    Path(__file__).parents[2] / "streaming/static/streaming/vendor/hls.js/hls.min.js"
)

# Loads each rung of `url` whole with hls.js, that rung only (ABR off), into
# a fresh audio element, as fast as it can: every fragment fetched and
# appended, until hls.js signals the end of the stream.
LOAD_EVERY_RUNG = """
async (url) => {
  const loadRung = (level) => new Promise((resolve) => {
    const audio = document.createElement('audio');
    document.body.appendChild(audio);
    const hls = new Hls({ startLevel: level, maxBufferLength: 600,
                          maxMaxBufferLength: 600, capLevelToPlayerSize: false });
    const result = { level, frags: [], errors: [], bufferedEnd: 0, duration: 0 };
    const finish = () => {
      const b = audio.buffered;
      result.bufferedStart = b.length ? b.start(0) : -1;
      result.bufferedEnd = b.length ? b.end(b.length - 1) : 0;
      result.ranges = b.length;
      result.duration = audio.duration;
      hls.destroy();
      resolve(result);
    };
    hls.on(Hls.Events.MANIFEST_PARSED, () => { hls.currentLevel = level; });
    hls.on(Hls.Events.FRAG_LOADED, (_e, data) => {
      result.frags.push([data.frag.level, data.frag.sn]);
    });
    hls.on(Hls.Events.BUFFER_EOS, finish);
    hls.on(Hls.Events.ERROR, (_e, data) => {
      result.errors.push([data.details, data.fatal]);
      if (data.fatal) finish();
    });
    hls.loadSource(url);
    hls.attachMedia(audio);
  });
  const results = [];
  for (let level = 0; level < 3; level++) results.push(await loadRung(level));
  return results;
}
"""


def hls_js_loads_every_rung(live_server, browser, url: str, package) -> None:
    page = browser.new_page()
    media = watch_media(page)
    page.goto(f"{live_server.url}/healthz")
    page.add_script_tag(content=HLS_JS.read_text())
    results = page.evaluate(LOAD_EVERY_RUNG, url)
    page.close()
    for result, rendition in zip(results, package.renditions, strict=True):
        assert not [e for e in result["errors"] if e[1]], result["errors"]
        # Every segment of that rung, and only of it, and the whole track.
        assert len(result["frags"]) == len(rendition["segments"]), result
        assert {level for level, _ in result["frags"]} == {result["level"]}
        assert result["ranges"] == 1
        assert result["bufferedStart"] <= 0.1
        assert result["bufferedEnd"] == pytest.approx(result["duration"], abs=0.2)
    rungs = {url.split("/")[-2] for url, _, _ in media}
    assert rungs == {r["name"] for r in package.renditions}
    for fetched, range_header, status in media:
        assert range_header is not None, f"a whole-file GET of {fetched}"
        assert status == 206, (fetched, range_header, status)


@pytest.mark.parametrize("path", ["s3", "nginx", "cdn"])
def test_hls_js_loads_every_rung_by_ranges_from_every_serving_path(
    request, live_server, browser, settings, path
):
    """hls.js reads every rung whole, by ranges only, from a package on S3
    (through the origin), from nginx mode, and through a Bunny edge that
    checks the directory token and pulls from the bucket."""
    from tests.cdn.edge import bucket_upstream, run_edge
    from tests.cdn.test_edge_ranges import configure, edge_for
    from tests.streaming.test_hls_client import master_url

    if path == "nginx":
        track, package = request.getfixturevalue("packaged")
        hls_js_loads_every_rung(
            live_server,
            browser,
            master_url(request.getfixturevalue("nginx"), track.pk),
            package,
        )
        return
    track, package, s3 = request.getfixturevalue("packaged_on_s3")
    if path == "s3":
        url = master_url(live_server.url, track.pk)
        hls_js_loads_every_rung(live_server, browser, url, package)
        return
    s3_server = request.getfixturevalue("s3_server")
    upstream = bucket_upstream(s3, s3_server)
    with run_edge(edge_for("bunny-hmac", settings), upstream, cors=True) as edge:
        configure(settings, "bunny-hmac", edge.base_url)
        body = Client().get(f"/api/v1/tracks/{track.pk}/hls").json()
        assert body["source"] == "cdn", body
        hls_js_loads_every_rung(live_server, browser, body["master_url"], package)
        assert all(status != 403 for _, _, status in edge.log)
