"""The signaling websocket: protocol, state machine, auth and abuse."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client

from veza.asgi import application
from webrtc import tickets
from webrtc.consumers import CallConsumer
from webrtc.models import Call, CallState, EndReason

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

OFFER = {"type": "offer", "sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=offer\r\n"}
ANSWER = {"type": "answer", "sdp": "v=0\r\no=- 3 4 IN IP4 127.0.0.1\r\ns=answer\r\n"}
CANDIDATE = {
    "candidate": "candidate:1 1 udp 2122260223 192.0.2.10 54400 typ host",
    "sdpMid": "0",
    "sdpMLineIndex": 0,
}


@pytest.fixture(autouse=True)
def _fast_timers(settings):
    settings.WEBRTC_RING_TIMEOUT = 30
    settings.WEBRTC_DISCONNECT_GRACE = 0.2
    settings.WEBRTC_MESSAGE_RATE = 1000.0
    settings.WEBRTC_MESSAGE_BURST = 1000
    settings.WEBRTC_STUN_URLS = ["stun:stun.example:3478"]
    settings.WEBRTC_TURN_URLS = []
    settings.WEBRTC_TURN_SECRETS = []


@pytest.fixture
def carol(db):
    return get_user_model().objects.create_user("carol", password="carol-pass-123")


async def connect(user) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(CallConsumer.as_asgi(), "/ws/calls/")
    communicator.scope["user"] = user
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def receive(communicator: WebsocketCommunicator, timeout: float = 3) -> dict:
    return await communicator.receive_json_from(timeout=timeout)


async def invite(caller: WebsocketCommunicator, callee, **extra) -> str:
    await caller.send_json_to(
        {"type": "call.invite", "id": "m1", "to": callee.pk, "sdp": OFFER, **extra}
    )
    ringing = await receive(caller)
    assert ringing["type"] == "call.ringing", ringing
    assert ringing["ref"] == "m1"
    return ringing["call_id"]


async def get_call(call_id: str) -> Call:
    return await database_sync_to_async(Call.objects.get)(pk=call_id)


async def close_all(*communicators: WebsocketCommunicator) -> None:
    for communicator in communicators:
        await communicator.disconnect()


async def test_a_call_rings_every_device_connects_relays_and_hangs_up(user, other_user):
    alice = await connect(user)
    bob_phone = await connect(other_user)
    bob_laptop = await connect(other_user)
    call_id = await invite(alice, other_user, media="video")
    for device in (bob_phone, bob_laptop):
        incoming = await receive(device)
        assert incoming == {
            "type": "call.incoming",
            "call_id": call_id,
            "from": {"id": user.pk, "username": "alice"},
            "media": "video",
            "sdp": OFFER,
        }
    # Before the answer the caller's candidates reach every ringing device.
    await alice.send_json_to(
        {"type": "call.candidate", "call_id": call_id, "candidate": CANDIDATE}
    )
    for device in (bob_phone, bob_laptop):
        assert (await receive(device))["candidate"] == CANDIDATE

    await bob_phone.send_json_to(
        {"type": "call.answer", "call_id": call_id, "sdp": ANSWER}
    )
    assert await receive(alice) == {
        "type": "call.answered",
        "call_id": call_id,
        "sdp": ANSWER,
    }
    assert await receive(bob_laptop) == {
        "type": "call.answered_elsewhere",
        "call_id": call_id,
    }
    call = await get_call(call_id)
    assert call.state == CallState.CONNECTED
    assert call.answered_at is not None

    # Relayed verbatim, to the other party's active device only.
    await bob_phone.send_json_to(
        {"type": "call.candidate", "call_id": call_id, "candidate": CANDIDATE}
    )
    assert await receive(alice) == {
        "type": "call.candidate",
        "call_id": call_id,
        "candidate": CANDIDATE,
    }
    await alice.send_json_to(
        {"type": "call.candidate", "call_id": call_id, "candidate": None}
    )
    assert (await receive(bob_phone))["candidate"] is None
    renegotiation = {"type": "offer", "sdp": "v=0\r\ns=restart\r\n"}
    await alice.send_json_to(
        {"type": "call.negotiate", "call_id": call_id, "sdp": renegotiation}
    )
    assert await receive(bob_phone) == {
        "type": "call.negotiate",
        "call_id": call_id,
        "sdp": renegotiation,
    }
    assert await bob_laptop.receive_nothing(timeout=0.2)

    # The other device of the callee is not in the call.
    await bob_laptop.send_json_to(
        {"type": "call.candidate", "id": 9, "call_id": call_id, "candidate": CANDIDATE}
    )
    error = await receive(bob_laptop)
    assert error["type"] == "error"
    assert error["code"] == "not_a_party"
    assert error["ref"] == 9
    assert await alice.receive_nothing(timeout=0.2)

    await alice.send_json_to(
        {"type": "call.hangup", "call_id": call_id, "reason": "user_hangup"}
    )
    ended = {"type": "call.ended", "call_id": call_id, "reason": "hangup"}
    assert await receive(bob_phone) == ended
    assert await receive(alice) == ended
    call = await get_call(call_id)
    assert call.state == CallState.ENDED
    assert call.end_reason == EndReason.HANGUP
    assert call.duration_seconds is not None
    assert call.duration_seconds >= 0
    # Ended calls take no more messages.
    await alice.send_json_to(
        {"type": "call.candidate", "call_id": call_id, "candidate": CANDIDATE}
    )
    assert (await receive(alice))["code"] == "bad_call_state"
    await close_all(alice, bob_phone, bob_laptop)


async def test_a_callee_in_a_call_answers_busy(user, other_user, carol):
    alice = await connect(user)
    bob = await connect(other_user)
    carol_ws = await connect(carol)
    call_id = await invite(carol_ws, other_user)
    await receive(bob)
    await bob.send_json_to({"type": "call.answer", "call_id": call_id, "sdp": ANSWER})
    await receive(carol_ws)
    await alice.send_json_to(
        {"type": "call.invite", "id": "x", "to": other_user.pk, "sdp": OFFER}
    )
    busy = await receive(alice)
    assert busy["type"] == "call.busy"
    assert busy["ref"] == "x"
    assert await bob.receive_nothing(timeout=0.2)
    call = await get_call(busy["call_id"])
    assert (call.state, call.end_reason) == (CallState.ENDED, EndReason.BUSY)
    # A caller already in a call cannot start another one.
    await carol_ws.send_json_to({"type": "call.invite", "to": user.pk, "sdp": OFFER})
    assert (await receive(carol_ws))["code"] == "already_in_call"
    await close_all(alice, bob, carol_ws)


async def test_an_unanswered_call_ends_after_the_ring_timeout(
    settings, user, other_user
):
    settings.WEBRTC_RING_TIMEOUT = 0.3
    alice = await connect(user)
    bob = await connect(other_user)
    call_id = await invite(alice, other_user)
    await receive(bob)
    ended = {"type": "call.ended", "call_id": call_id, "reason": "invite_timeout"}
    assert await receive(alice) == ended
    assert await receive(bob) == ended
    call = await get_call(call_id)
    assert call.end_reason == EndReason.INVITE_TIMEOUT
    assert call.answered_at is None
    await close_all(alice, bob)


async def test_reject_ends_the_call_on_every_device(user, other_user):
    alice = await connect(user)
    bob_phone = await connect(other_user)
    bob_laptop = await connect(other_user)
    call_id = await invite(alice, other_user)
    await receive(bob_phone)
    await receive(bob_laptop)
    await bob_laptop.send_json_to({"type": "call.reject", "call_id": call_id})
    assert await receive(alice) == {"type": "call.rejected", "call_id": call_id}
    for device in (bob_phone, bob_laptop):
        assert await receive(device) == {
            "type": "call.ended",
            "call_id": call_id,
            "reason": "rejected",
        }
    # Too late to answer.
    await bob_phone.send_json_to(
        {"type": "call.answer", "call_id": call_id, "sdp": ANSWER}
    )
    assert (await receive(bob_phone))["code"] == "bad_call_state"
    await close_all(alice, bob_phone, bob_laptop)


async def test_cancel_and_hangup_while_ringing(user, other_user):
    alice = await connect(user)
    bob = await connect(other_user)
    call_id = await invite(alice, other_user)
    await receive(bob)
    await alice.send_json_to({"type": "call.cancel", "call_id": call_id})
    cancelled = {"type": "call.ended", "call_id": call_id, "reason": "cancelled"}
    assert await receive(bob) == cancelled
    assert await receive(alice) == cancelled
    # A callee's hangup while ringing is a reject.
    second = await invite(alice, other_user)
    await receive(bob)
    await bob.send_json_to({"type": "call.hangup", "call_id": second})
    assert await receive(alice) == {"type": "call.rejected", "call_id": second}
    assert (await get_call(second)).end_reason == EndReason.REJECTED
    await close_all(alice, bob)


async def test_a_party_that_disconnects_ends_the_call_after_the_grace(
    settings, user, other_user
):
    settings.WEBRTC_DISCONNECT_GRACE = 0.4
    alice = await connect(user)
    bob = await connect(other_user)
    call_id = await invite(alice, other_user)
    await receive(bob)
    await bob.send_json_to({"type": "call.answer", "call_id": call_id, "sdp": ANSWER})
    await receive(alice)
    await bob.disconnect()
    # Not at once: the grace runs first.
    assert await alice.receive_nothing(timeout=0.2)
    assert await receive(alice) == {
        "type": "call.ended",
        "call_id": call_id,
        "reason": "peer_gone",
    }
    assert (await get_call(call_id)).end_reason == EndReason.PEER_GONE
    await alice.disconnect()


async def ringing_call(alice_user, bob_user) -> tuple[Any, Any, str]:
    alice = await connect(alice_user)
    bob = await connect(bob_user)
    call_id = await invite(alice, bob_user)
    assert (await receive(bob))["type"] == "call.incoming"
    return alice, bob, call_id


async def connected_call(alice_user, bob_user) -> tuple[Any, Any, str]:
    alice, bob, call_id = await ringing_call(alice_user, bob_user)
    await bob.send_json_to({"type": "call.answer", "call_id": call_id, "sdp": ANSWER})
    assert (await receive(alice))["type"] == "call.answered"
    # bob's socket handles one frame at a time: its pong comes after every
    # delivery of the answer (the "answered elsewhere" to his other devices
    # included), so a device he connects next never sees that one.
    await bob.send_json_to({"type": "ping", "id": "sync"})
    assert await receive(bob) == {"type": "pong", "ref": "sync"}
    return alice, bob, call_id


async def assert_relayed(sender: Any, receiver: Any, call_id: str) -> None:
    await sender.send_json_to(
        {"type": "call.candidate", "call_id": call_id, "candidate": CANDIDATE}
    )
    assert await receive(receiver) == {
        "type": "call.candidate",
        "call_id": call_id,
        "candidate": CANDIDATE,
    }


async def test_a_device_that_reconnects_within_the_grace_resumes_its_call(
    settings, user, other_user
):
    settings.WEBRTC_DISCONNECT_GRACE = 0.5
    alice, bob, call_id = await connected_call(user, other_user)
    await bob.disconnect()
    bob_again = await connect(other_user)
    await bob_again.send_json_to({"type": "call.resume", "id": 7, "call_id": call_id})
    assert await receive(bob_again) == {
        "type": "call.resumed",
        "call_id": call_id,
        "state": "connected",
        "ref": 7,
    }
    assert await receive(alice) == {"type": "call.peer_resumed", "call_id": call_id}
    # Past the grace of the old socket, the call goes on, both ways.
    assert await alice.receive_nothing(timeout=0.8)
    await assert_relayed(alice, bob_again, call_id)
    await assert_relayed(bob_again, alice, call_id)
    call = await get_call(call_id)
    assert call.state == CallState.CONNECTED
    assert call.callee_channel != ""
    await alice.send_json_to({"type": "call.hangup", "call_id": call_id})
    assert (await receive(bob_again))["type"] == "call.ended"
    await close_all(alice, bob_again)


async def test_another_device_takes_the_call_over(user, other_user):
    alice, bob, call_id = await connected_call(user, other_user)
    bob_laptop = await connect(other_user)
    await bob_laptop.send_json_to({"type": "call.resume", "call_id": call_id})
    assert (await receive(bob_laptop))["type"] == "call.resumed"
    assert (await receive(alice))["type"] == "call.peer_resumed"
    assert await receive(bob) == {"type": "call.resumed_elsewhere", "call_id": call_id}
    # The device it left can no longer send into the call.
    await bob.send_json_to(
        {"type": "call.candidate", "call_id": call_id, "candidate": CANDIDATE}
    )
    assert (await receive(bob))["code"] == "not_a_party"
    await assert_relayed(alice, bob_laptop, call_id)
    await close_all(alice, bob, bob_laptop)


async def test_a_calling_device_resumes_while_ringing(settings, user, other_user):
    settings.WEBRTC_DISCONNECT_GRACE = 0.4
    alice, bob, call_id = await ringing_call(user, other_user)
    await alice.disconnect()
    alice_again = await connect(user)
    await alice_again.send_json_to({"type": "call.resume", "call_id": call_id})
    assert await receive(alice_again) == {
        "type": "call.resumed",
        "call_id": call_id,
        "state": "ringing",
    }
    assert await bob.receive_nothing(timeout=0.6)
    await assert_relayed(alice_again, bob, call_id)
    await bob.send_json_to({"type": "call.answer", "call_id": call_id, "sdp": ANSWER})
    assert (await receive(alice_again))["type"] == "call.answered"
    await close_all(alice_again, bob)


async def test_resume_is_refused_to_others_and_after_the_end(user, other_user, carol):
    alice, bob, call_id = await connected_call(user, other_user)
    intruder = await connect(carol)
    await intruder.send_json_to({"type": "call.resume", "id": "r", "call_id": call_id})
    refused = await receive(intruder)
    assert (refused["code"], refused["ref"]) == ("not_a_party", "r")
    await alice.send_json_to({"type": "call.hangup", "call_id": call_id})
    await receive(alice)
    await receive(bob)
    await bob.send_json_to({"type": "call.resume", "call_id": call_id})
    assert (await receive(bob))["code"] == "bad_call_state"
    await close_all(alice, bob, intruder)


async def test_a_ringing_callee_cannot_resume(user, other_user):
    alice, bob, call_id = await ringing_call(user, other_user)
    await bob.send_json_to({"type": "call.resume", "call_id": call_id})
    assert (await receive(bob))["code"] == "bad_call_state"
    await close_all(alice, bob)


async def test_a_caller_that_disconnects_while_ringing_stops_the_ringing(
    user, other_user
):
    alice = await connect(user)
    bob = await connect(other_user)
    call_id = await invite(alice, other_user)
    await receive(bob)
    await alice.disconnect()
    assert await receive(bob) == {
        "type": "call.ended",
        "call_id": call_id,
        "reason": "peer_gone",
    }
    await bob.disconnect()


async def test_only_the_parties_can_send_into_a_call(user, other_user, carol):
    alice = await connect(user)
    bob = await connect(other_user)
    intruder = await connect(carol)
    call_id = await invite(alice, other_user)
    await receive(bob)
    for message in (
        {"type": "call.answer", "call_id": call_id, "sdp": ANSWER},
        {"type": "call.candidate", "call_id": call_id, "candidate": CANDIDATE},
        {"type": "call.negotiate", "call_id": call_id, "sdp": OFFER},
        {"type": "call.hangup", "call_id": call_id},
        {"type": "call.reject", "call_id": call_id},
        {"type": "call.cancel", "call_id": call_id},
    ):
        await intruder.send_json_to(message)
        error = await receive(intruder)
        assert error["code"] == "not_a_party", (message, error)
    # Nor can the callee cancel, or the caller answer its own call.
    await bob.send_json_to({"type": "call.cancel", "call_id": call_id})
    assert (await receive(bob))["code"] == "not_a_party"
    await alice.send_json_to({"type": "call.answer", "call_id": call_id, "sdp": ANSWER})
    assert (await receive(alice))["code"] == "not_a_party"
    await intruder.send_json_to(
        {"type": "call.candidate", "call_id": str(uuid.uuid4()), "candidate": None}
    )
    assert (await receive(intruder))["code"] == "call_not_found"
    assert await alice.receive_nothing(timeout=0.2)
    assert await bob.receive_nothing(timeout=0.1)
    assert (await get_call(call_id)).state == CallState.RINGING
    await close_all(alice, bob, intruder)


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ({"type": "call.invite", "to": "self", "sdp": OFFER}, "invalid_callee"),
        ({"type": "call.invite", "to": 999_999, "sdp": OFFER}, "invalid_callee"),
        ({"type": "call.invite", "to": "abc", "sdp": OFFER}, "bad_message"),
        ({"type": "call.invite", "to": True, "sdp": OFFER}, "bad_message"),
        ({"type": "call.invite", "to": "other", "sdp": ANSWER}, "bad_message"),
        ({"type": "call.invite", "to": "other", "sdp": "v=0"}, "bad_message"),
        (
            {"type": "call.invite", "to": "other", "sdp": OFFER, "media": "smell"},
            "bad_message",
        ),
        (
            {"type": "call.invite", "to": "other", "sdp": OFFER, "call_id": "x"},
            "bad_message",
        ),
        ({"type": "call.answer", "call_id": "nope", "sdp": ANSWER}, "bad_message"),
        ({"type": "call.candidate", "call_id": None, "candidate": None}, "bad_message"),
        (
            {"type": "call.candidate", "call_id": str(uuid.uuid4()), "candidate": "x"},
            "bad_message",
        ),
    ],
)
async def test_invalid_messages_get_an_error_with_a_stable_code(
    user, other_user, message, code
):
    alice = await connect(user)
    message = dict(message)
    if message.get("to") == "self":
        message["to"] = user.pk
    if message.get("to") == "other":
        message["to"] = other_user.pk
    await alice.send_json_to({**message, "id": "r1"})
    error = await receive(alice)
    assert error["type"] == "error"
    assert (error["code"], error["ref"]) == (code, "r1")
    assert await database_sync_to_async(Call.objects.count)() == 0
    await alice.disconnect()


async def test_a_call_id_cannot_be_reused(user, other_user):
    alice = await connect(user)
    call_id = str(uuid.uuid4())
    assert await invite(alice, other_user, call_id=call_id) == call_id
    await alice.send_json_to({"type": "call.cancel", "call_id": call_id})
    await receive(alice)
    await alice.send_json_to(
        {"type": "call.invite", "to": other_user.pk, "sdp": OFFER, "call_id": call_id}
    )
    assert (await receive(alice))["code"] == "duplicate_call"
    await alice.disconnect()


async def test_malformed_frames_never_crash_the_socket(settings, user):
    settings.WEBRTC_MAX_MESSAGE_BYTES = 1024
    alice = await connect(user)
    await alice.send_to(text_data="{not json")
    assert (await receive(alice))["code"] == "bad_json"
    await alice.send_to(text_data="[1, 2]")
    assert (await receive(alice))["code"] == "bad_message"
    await alice.send_to(text_data='{"type": 5}')
    assert (await receive(alice))["code"] == "bad_message"
    await alice.send_json_to({"type": "call.teleport", "id": "t"})
    assert await receive(alice) == {
        "type": "error",
        "code": "unknown_type",
        "message": "Unknown message type.",
        "ref": "t",
    }
    await alice.send_to(bytes_data=b"\x00\x01")
    assert (await receive(alice))["code"] == "binary_frame"
    await alice.send_to(text_data=json.dumps({"type": "ping", "pad": "x" * 2000}))
    assert (await receive(alice))["code"] == "message_too_large"
    await alice.send_json_to({"type": "ping", "id": 1})
    assert await receive(alice) == {"type": "pong", "ref": 1}
    await alice.disconnect()


async def test_a_flood_is_rate_limited_then_closed(settings, user):
    settings.WEBRTC_MESSAGE_RATE = 1.0
    settings.WEBRTC_MESSAGE_BURST = 5
    settings.WEBRTC_MAX_VIOLATIONS = 3
    alice = await connect(user)
    for _ in range(5):
        await alice.send_json_to({"type": "ping"})
        assert (await receive(alice))["type"] == "pong"
    for _ in range(3):
        await alice.send_json_to({"type": "ping"})
        assert (await receive(alice))["code"] == "rate_limited"
    await alice.send_json_to({"type": "ping"})
    closed = await alice.receive_output(timeout=2)
    assert closed == {"type": "websocket.close", "code": 4429}


async def test_ice_refresh_sends_fresh_servers(user):
    alice = await connect(user)
    await alice.send_json_to({"type": "ice.refresh"})
    assert await receive(alice) == {
        "type": "ice.servers",
        "iceServers": [{"urls": ["stun:stun.example:3478"]}],
        "hasTurn": False,
        "ttl": None,
    }
    await alice.disconnect()


# Authentication ----------------------------------------------------------------


def app_communicator(
    path: str = "/ws/calls/", cookie: str = ""
) -> WebsocketCommunicator:
    headers = [(b"origin", b"http://testserver"), (b"host", b"testserver")]
    if cookie:
        headers.append((b"cookie", cookie.encode()))
    return WebsocketCommunicator(application, path, headers=headers)


async def assert_closed_unauthenticated(communicator: WebsocketCommunicator) -> None:
    connected, _ = await communicator.connect()
    assert connected
    assert await communicator.receive_output(timeout=2) == {
        "type": "websocket.close",
        "code": 4401,
    }


async def test_an_anonymous_socket_is_closed_with_4401():
    await assert_closed_unauthenticated(app_communicator())


async def test_a_session_cookie_authenticates(user):
    client = Client()
    await database_sync_to_async(client.force_login)(user)
    communicator = app_communicator(
        cookie=f"sessionid={client.cookies['sessionid'].value}"
    )
    connected, _ = await communicator.connect()
    assert connected
    await communicator.send_json_to({"type": "ping", "id": "p"})
    assert await receive(communicator) == {"type": "pong", "ref": "p"}
    await communicator.disconnect()


async def test_a_foreign_origin_is_refused(user):
    communicator = WebsocketCommunicator(
        application, "/ws/calls/", headers=[(b"origin", b"https://evil.example")]
    )
    connected, _ = await communicator.connect()
    assert not connected


async def test_a_ticket_opens_one_socket_once(user):
    ticket, ttl = await database_sync_to_async(tickets.ticket_issue)(user_id=user.pk)
    assert ttl == 60
    communicator = app_communicator(f"/ws/calls/?ticket={ticket}")
    connected, _ = await communicator.connect()
    assert connected
    await communicator.send_json_to({"type": "ping"})
    assert (await receive(communicator))["type"] == "pong"
    await communicator.disconnect()
    await assert_closed_unauthenticated(app_communicator(f"/ws/calls/?ticket={ticket}"))
    await assert_closed_unauthenticated(app_communicator("/ws/calls/?ticket=forged"))


async def test_an_expired_ticket_is_refused(user, monkeypatch):
    ticket, ttl = await database_sync_to_async(tickets.ticket_issue)(user_id=user.pk)
    issued = time.time()
    monkeypatch.setattr(time, "time", lambda: issued + ttl + 1)
    await assert_closed_unauthenticated(app_communicator(f"/ws/calls/?ticket={ticket}"))
