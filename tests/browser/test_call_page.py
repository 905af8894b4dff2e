"""Two browsers call each other on the call page (Playwright + Debian chromium)."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.browser.conftest import chromium, requires_chromium
from tests.webrtc.coturn import TURNSERVER, start_coturn
from tests.webrtc.servers import start_daphne
from webrtc.models import Call, CallState, EndReason

pytestmark = [pytest.mark.django_db(transaction=True), requires_chromium]

CALL_ARGS = [
    # Fake camera and microphone, granted without a prompt.
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    # Real host candidates instead of .local names no resolver here answers.
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--allow-loopback-in-peer-connection",
]

CONNECTED = (
    "() => window.vezaCalls.pc && window.vezaCalls.pc.connectionState === 'connected'"
)


@pytest.fixture
def browser():
    with chromium(CALL_ARGS) as running:
        yield running


def logged_in_context(browser, server, user, *, init_script=None, **options):
    client = Client()
    client.force_login(user)
    context = browser.new_context(**options)
    if init_script is not None:
        context.add_init_script(path=str(init_script))
    context.add_cookies(
        [
            {
                "name": "sessionid",
                "value": client.cookies["sessionid"].value,
                "url": server.http,
            }
        ]
    )
    return context


def logged_in_page(
    browser, server, user, path="/calls/", route_socket=None, init_script=None
):
    context = logged_in_context(
        browser,
        server,
        user,
        init_script=init_script,
        permissions=["camera", "microphone"],
    )
    page = context.new_page()
    if route_socket is not None:
        page.route_web_socket("**/ws/calls/", route_socket)
    page.goto(server.http + path)
    page.wait_for_function(
        "() => window.vezaCalls && window.vezaCalls.ice.loaded"
        " && window.vezaCalls.socketOpen"
    )
    return page


def place_and_answer(caller_page, callee_page, callee) -> None:
    caller_page.select_option("#callee", str(callee.pk))
    caller_page.click("#call")
    callee_page.locator("#answer").wait_for(state="visible", timeout=15_000)
    callee_page.click("#answer")
    for page in (caller_page, callee_page):
        page.wait_for_function(CONNECTED, timeout=30_000)


def hang_up(caller_page, callee_page) -> None:
    caller_page.click("#hangup")
    for page in (caller_page, callee_page):
        page.wait_for_function(
            "() => document.getElementById('calls').dataset.state === 'ended'",
            timeout=10_000,
        )
        assert page.evaluate("window.vezaCalls.lastCall.reason") == "hangup"
        assert page.evaluate("window.vezaCalls.lastCall.pc.connectionState") == "closed"


def test_two_browsers_connect_and_hang_up(
    settings, tmp_path, browser, user, other_user
):
    server = start_daphne(settings, tmp_path)
    try:
        alice = logged_in_page(browser, server, user)
        bob = logged_in_page(browser, server, other_user)
        # No TURN configured: the call button warns before anyone calls.
        assert alice.evaluate("window.vezaCalls.ice.hasTurn") is False
        assert "No TURN relay" in alice.get_attribute("#call", "title")
        assert alice.locator("#turn-warning").is_visible()
        place_and_answer(alice, bob, other_user)
        alice.click("#mute")
        assert alice.get_attribute("#mute", "aria-pressed") == "true"
        hang_up(alice, bob)
        call = Call.objects.get()
        assert (call.state, call.end_reason) == (CallState.ENDED, EndReason.HANGUP)
        assert call.answered_at is not None
    finally:
        server.stop()


def test_the_page_falls_back_to_public_stun_when_the_config_fails(
    settings, tmp_path, browser, user
):
    server = start_daphne(settings, tmp_path)
    try:
        page = logged_in_context(browser, server, user).new_page()
        page.route("**/api/v1/config/webrtc", lambda route: route.abort())
        page.goto(server.http + "/calls/")
        page.wait_for_function("() => window.vezaCalls.ice.loaded")
        assert page.evaluate("window.vezaCalls.ice.fallback") is True
        assert page.evaluate("window.vezaCalls.ice.hasTurn") is False
    finally:
        server.stop()


@pytest.mark.skipif(TURNSERVER is None, reason="coturn is not installed")
def test_relay_only_calls_go_through_coturn(
    settings, tmp_path, browser, user, other_user
):
    turn = start_coturn(tmp_path, ["browser-secret"])
    server = start_daphne(
        settings,
        tmp_path,
        extra={
            "WEBRTC_TURN_URLS": turn.url,
            "WEBRTC_TURN_SECRET": "browser-secret",
            "WEBRTC_TURN_TTL": "600",
        },
    )
    try:
        alice = logged_in_page(browser, server, user, "/calls/?policy=relay")
        bob = logged_in_page(browser, server, other_user, "/calls/?policy=relay")
        assert alice.evaluate("window.vezaCalls.ice.hasTurn") is True
        assert alice.get_attribute("#call", "title") == "Call"
        place_and_answer(alice, bob, other_user)
        for page in (alice, bob):
            pair = page.evaluate("window.vezaCalls.selectedCandidatePair()")
            # Each side sends only from its coturn allocation. The peer's
            # relay address is typed "prflx" when its connectivity check
            # arrives before its trickled candidate (seen once in CI).
            assert pair["local"] == "relay", pair
            assert pair["remote"] in ("relay", "prflx"), pair
        hang_up(alice, bob)
    finally:
        server.stop()
        turn.stop()


def test_a_call_survives_a_dropped_signaling_socket(
    settings, tmp_path, browser, user, other_user
):
    server = start_daphne(settings, tmp_path, extra={"WEBRTC_DISCONNECT_GRACE": "2"})
    try:
        sockets: list = []

        def through(route) -> None:
            route.connect_to_server()
            sockets.append(route)

        alice = logged_in_page(browser, server, user, route_socket=through)
        bob = logged_in_page(browser, server, other_user)
        place_and_answer(alice, bob, other_user)
        # The network drops Alice's socket; the page reconnects and resumes.
        sockets[-1].close(code=4000, reason="network gone")
        alice.wait_for_function("() => !window.vezaCalls.socketOpen")
        alice.wait_for_function("() => window.vezaCalls.socketOpen", timeout=10_000)
        alice.wait_for_timeout(3_500)  # past the old socket's grace
        assert len(sockets) == 2
        call = Call.objects.get()
        assert call.state == CallState.CONNECTED
        for page in (alice, bob):
            assert page.evaluate(CONNECTED)
            assert page.evaluate("window.vezaCalls.state") == "connected"
        hang_up(alice, bob)
        call.refresh_from_db()
        assert (call.state, call.end_reason) == (CallState.ENDED, EndReason.HANGUP)
    finally:
        server.stop()
