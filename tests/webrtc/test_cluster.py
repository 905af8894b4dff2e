"""Two daphne processes on one Redis carry a call between their clients."""

from __future__ import annotations

import asyncio
import json
import os

import pytest
from channels.db import database_sync_to_async
from django.test import Client

from tests.webrtc.servers import redis_reachable, start_daphne
from webrtc.models import Call, CallState, EndReason

websockets = pytest.importorskip("websockets.asyncio.client")

REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not redis_reachable(REDIS_URL),
        reason=f"Redis is not reachable at {REDIS_URL} (set REDIS_URL)",
    ),
]

OFFER = {"type": "offer", "sdp": "v=0\r\ns=cluster-offer\r\n"}
ANSWER = {"type": "answer", "sdp": "v=0\r\ns=cluster-answer\r\n"}


@pytest.fixture
def two_daphnes(settings, tmp_path):
    servers = [
        start_daphne(settings, tmp_path, redis_url=REDIS_URL),
        start_daphne(settings, tmp_path, redis_url=REDIS_URL),
    ]
    yield servers
    for server in servers:
        server.stop()


async def session_cookie(user) -> str:
    client = Client()
    await database_sync_to_async(client.force_login)(user)
    return f"sessionid={client.cookies['sessionid'].value}"


async def open_socket(server, user):
    return await websockets.connect(
        f"{server.ws}/ws/calls/",
        origin=server.http,
        additional_headers={"Cookie": await session_cookie(user)},
    )


async def receive(socket) -> dict:
    return json.loads(await asyncio.wait_for(socket.recv(), timeout=10))


async def test_a_call_between_two_processes(two_daphnes, user, other_user):
    first, second = two_daphnes
    alice = await open_socket(first, user)
    bob = await open_socket(second, other_user)
    try:
        await alice.send(
            json.dumps({"type": "call.invite", "to": other_user.pk, "sdp": OFFER})
        )
        ringing = await receive(alice)
        assert ringing["type"] == "call.ringing"
        call_id = ringing["call_id"]
        incoming = await receive(bob)
        assert (incoming["type"], incoming["call_id"]) == ("call.incoming", call_id)
        assert incoming["sdp"] == OFFER
        await bob.send(
            json.dumps({"type": "call.answer", "call_id": call_id, "sdp": ANSWER})
        )
        assert await receive(alice) == {
            "type": "call.answered",
            "call_id": call_id,
            "sdp": ANSWER,
        }
        candidate = {"candidate": "candidate:1 1 udp 1 192.0.2.1 9 typ host"}
        for i in range(20):
            await bob.send(
                json.dumps(
                    {
                        "type": "call.candidate",
                        "call_id": call_id,
                        "candidate": {**candidate, "sdpMLineIndex": i},
                    }
                )
            )
        for i in range(20):
            frame = await receive(alice)
            assert frame["candidate"]["sdpMLineIndex"] == i
        await alice.send(json.dumps({"type": "call.hangup", "call_id": call_id}))
        ended = {"type": "call.ended", "call_id": call_id, "reason": "hangup"}
        assert await receive(bob) == ended
        assert await receive(alice) == ended
        call = await database_sync_to_async(Call.objects.get)(pk=call_id)
        assert (call.state, call.end_reason) == (CallState.ENDED, EndReason.HANGUP)
        assert call.caller_channel != call.callee_channel
    finally:
        await alice.close()
        await bob.close()
