"""The signaling websocket under abuse: malformed frames, floods, foreign origins."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.core.cache import cache
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tests.webrtc.test_consumers import OFFER, close_all, connect, receive
from veza.asgi import application
from veza.websocket_origin import origin_allowed
from webrtc.consumers import CLIENT_TYPES

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _limits(settings):
    settings.WEBRTC_MESSAGE_RATE = 1000.0
    settings.WEBRTC_MESSAGE_BURST = 1000
    settings.WEBRTC_STUN_URLS = []
    settings.WEBRTC_TURN_URLS = []
    settings.WEBRTC_TURN_SECRETS = []
    cache.clear()
    yield
    cache.clear()


async def answer_then_pong(socket: WebsocketCommunicator, frame: Any) -> dict:
    """Send `frame`; its answer, after which the socket still answers a ping."""
    await socket.send_json_to(frame)
    answer = await receive(socket)
    await socket.send_json_to({"type": "ping", "id": "alive"})
    assert await receive(socket) == {"type": "pong", "ref": "alive"}
    return answer


# Malformed values -------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "to", [10**30, -(10**30), 2**63, 0, -1, "99999999999999999999999", "1e3", 1.5]
)
async def test_an_invite_to_no_possible_user_is_an_error_frame(user, to):
    socket = await connect(user)
    answer = await answer_then_pong(
        socket, {"type": "call.invite", "id": "i", "to": to, "sdp": OFFER}
    )
    assert answer["type"] == "error"
    assert answer["code"] in ("invalid_callee", "bad_message")
    assert answer["ref"] == "i"
    await socket.disconnect()


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
# Ids no user has, in every form a client could send one.
NO_USER = (
    st.integers(max_value=0)
    | st.integers(min_value=2**31)
    | st.integers(min_value=2**63)
    | JSON.filter(
        lambda v: (
            not (isinstance(v, str) and v.strip().isdigit()) and not isinstance(v, int)
        )
    )
)
FIELDS = st.fixed_dictionaries(
    {"type": st.sampled_from(CLIENT_TYPES)},
    optional={
        "id": JSON,
        "to": NO_USER,
        "call_id": JSON,
        "media": JSON,
        "sdp": JSON,
        "candidate": JSON,
        "reason": JSON,
    },
)


@given(frame=FIELDS)
@hypothesis_settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_every_malformed_frame_gets_an_answer_and_the_socket_stays_usable(
    user, other_user, frame
):
    async def exchange() -> dict:
        socket = await connect(user)
        try:
            return await answer_then_pong(socket, frame)
        finally:
            await socket.disconnect()

    answer = async_to_sync(exchange)()
    # Every value a check foresaw: a stable code, never the catch-all.
    assert answer["type"] in ("error", "pong", "ice.servers"), answer
    if answer["type"] == "error":
        assert answer["code"] != "internal_error", (frame, answer)


# Invite floods --------------------------------------------------------------------


@pytest.fixture
def others(db) -> list[Any]:
    return [
        get_user_model().objects.create_user(f"someone{n}", password="x" * 12)
        for n in range(4)
    ]


async def invite_then_cancel(socket: WebsocketCommunicator, callee: Any) -> str:
    """Invite `callee`; the answer's code, or its type. A call that rings is
    cancelled, so the next invite is not refused as already_in_call."""
    await socket.send_json_to({"type": "call.invite", "to": callee.pk, "sdp": OFFER})
    answer = await receive(socket)
    if answer["type"] == "call.ringing":
        await socket.send_json_to({"type": "call.cancel", "call_id": answer["call_id"]})
        assert (await receive(socket))["type"] == "call.ended"
    return answer.get("code") or answer["type"]


@pytest.mark.asyncio
async def test_invites_are_limited_per_caller_across_sockets(settings, user, others):
    settings.WEBRTC_INVITES_PER_MINUTE = 3
    sockets = [await connect(user), await connect(user)]
    codes = [
        await invite_then_cancel(sockets[n % 2], callee)
        for n, callee in enumerate(others)
    ]
    assert codes == ["call.ringing"] * 3 + ["too_many_invites"]
    await close_all(*sockets)


@pytest.mark.asyncio
async def test_rings_are_limited_per_callee_across_callers(
    settings, other_user, others
):
    settings.WEBRTC_RINGS_PER_MINUTE = 2
    codes = []
    for caller in others[:3]:
        socket = await connect(caller)
        codes.append(await invite_then_cancel(socket, other_user))
        await socket.disconnect()
    assert codes == ["call.ringing", "call.ringing", "too_many_invites"]


# Origins ------------------------------------------------------------------------


def scope(origin: str | None, host: str, scheme: str = "ws", **headers: str) -> dict:
    pairs = [(b"host", host.encode())]
    if origin is not None:
        pairs.append((b"origin", origin.encode()))
    pairs += [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]
    return {"type": "websocket", "scheme": scheme, "headers": pairs}


@pytest.mark.parametrize(
    ("origin", "host", "scheme", "headers", "allowed"),
    [
        ("http://localhost:8000", "localhost:8000", "ws", {}, True),
        ("http://localhost:9999", "localhost:8000", "ws", {}, False),
        ("http://localhost", "localhost:8000", "ws", {}, False),
        ("https://localhost:8000", "localhost:8000", "ws", {}, False),
        ("https://testserver", "testserver", "wss", {}, True),
        ("http://testserver", "testserver", "wss", {}, False),
        (
            "https://testserver",
            "testserver",
            "ws",
            {"x_forwarded_proto": "https"},
            True,
        ),
        ("http://evil.example", "evil.example", "ws", {}, False),
        (None, "testserver", "ws", {}, False),
        ("null", "testserver", "ws", {}, False),
        ("https://app.example", "testserver", "wss", {}, True),
        ("http://app.example", "testserver", "ws", {}, False),
        ("https://eu.veza.example", "testserver", "wss", {}, True),
        ("https://eu.veza.example:444", "testserver", "wss", {}, False),
    ],
)
def test_only_this_site_and_trusted_origins_open_a_socket(
    settings, origin, host, scheme, headers, allowed
):
    settings.CSRF_TRUSTED_ORIGINS = ["https://app.example", "https://*.veza.example"]
    assert origin_allowed(scope(origin, host, scheme, **headers)) is allowed


@pytest.mark.asyncio
async def test_a_socket_from_another_port_of_an_allowed_host_is_refused():
    headers = [(b"origin", b"http://localhost:9999"), (b"host", b"localhost:8000")]
    communicator = WebsocketCommunicator(application, "/ws/calls/", headers=headers)
    connected, _ = await communicator.connect()
    assert not connected
    headers = [(b"origin", b"http://localhost:8000"), (b"host", b"localhost:8000")]
    communicator = WebsocketCommunicator(application, "/ws/calls/", headers=headers)
    connected, _ = await communicator.connect()
    assert connected  # then closed 4401: nobody signed in
    await communicator.disconnect()
