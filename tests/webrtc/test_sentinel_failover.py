"""A call between two daphne processes through a Redis failover under Sentinel.

A Redis primary, a replica and three Sentinels (tests/redis_sentinel.py);
two daphne processes configured with REDIS_SENTINELS, as `make run` starts
them; Alice on one, Bob on the other, in an answered call. The primary is
killed (SIGKILL) while Bob sends ICE candidates every 100 ms. Once the
Sentinels have promoted the replica, the relay resumes and every frame sent
from then on reaches Alice; the call is still connected; a websocket ticket
issued before the failover (and not used) still opens a socket; a token
revoked before it stays revoked; `/readyz` names the channel layer during
the gap and is ready after.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest
import requests
from channels.db import database_sync_to_async
from redis import Redis
from rest_framework.authtoken.models import Token

from tests.redis_sentinel import MASTER, redis_server_binary, start_sentinel_group
from tests.webrtc.servers import start_daphne
from tests.webrtc.test_cluster import ANSWER, OFFER, open_socket, receive
from webrtc.models import Call, CallState

websockets = pytest.importorskip("websockets.asyncio.client")

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        redis_server_binary() is None,
        reason="redis-server is not installed (apt-get install redis-server)",
    ),
]

# Under the signaling rate limit (WEBRTC_MESSAGE_RATE, 20 a second), as a
# browser trickling candidates would be.
SEND_EVERY = 0.1
KILL_AFTER = 1.0
SEND_FOR = 10.0


@pytest.fixture
def sentinel_cluster(settings, tmp_path):
    group = start_sentinel_group()
    extra = {"REDIS_SENTINELS": group.sentinels, "REDIS_SENTINEL_MASTER": MASTER}
    servers = []
    try:
        servers = [start_daphne(settings, tmp_path, extra=extra) for _ in range(2)]
        yield group, servers
    finally:
        for server in servers:
            server.stop()
        group.stop()


def watch_readyz(url: str, seen: list[tuple[float, int]], stop: threading.Event):
    while not stop.is_set():
        try:
            status = requests.get(url, timeout=5).status_code
        except requests.RequestException:
            status = 0
        seen.append((time.monotonic(), status))
        time.sleep(0.1)


async def test_a_call_rides_through_a_redis_failover(
    sentinel_cluster, user, other_user, django_user_model
):
    group, (first, second) = sentinel_cluster
    alice = await open_socket(first, user)
    bob = await open_socket(second, other_user)
    await alice.send(
        json.dumps({"type": "call.invite", "to": other_user.pk, "sdp": OFFER})
    )
    call_id = (await receive(alice))["call_id"]
    assert (await receive(bob))["type"] == "call.incoming"
    await bob.send(
        json.dumps({"type": "call.answer", "call_id": call_id, "sdp": ANSWER})
    )
    assert (await receive(alice))["type"] == "call.answered"

    # Before the failover: a ticket Bob does not use yet, and a token that
    # was cached by the server and then revoked.
    bob_token = await database_sync_to_async(Token.objects.create)(user=other_user)
    auth = {"Authorization": f"Token {bob_token.key}"}
    ticket = requests.post(
        f"{second.http}/api/v1/calls/ticket", headers=auth, timeout=10
    )
    assert ticket.status_code in (200, 201), ticket.text
    carol = await database_sync_to_async(django_user_model.objects.create_user)(
        "carol", password="carol-pass-123"
    )
    carol_token = await database_sync_to_async(Token.objects.create)(user=carol)
    carol_auth = {"Authorization": f"Token {carol_token.key}"}
    tokens_url = f"{first.http}/api/v1/auth/tokens"
    assert requests.get(tokens_url, headers=carol_auth, timeout=10).ok
    revoked = requests.delete(tokens_url, headers=carol_auth, timeout=10)
    assert revoked.status_code == 204
    # What the primary holds is on the replica (replication is asynchronous:
    # a write in its last milliseconds could be lost with it).
    assert Redis(port=group.primary_port).wait(1, 2000) == 1

    readyz: list[tuple[float, int]] = []
    stop = threading.Event()
    watcher = threading.Thread(
        target=watch_readyz, args=(f"{first.http}/readyz", readyz, stop)
    )
    watcher.start()
    received: set[int] = set()

    async def listen() -> None:
        while True:
            frame = json.loads(await alice.recv())
            if frame.get("type") == "call.candidate":
                received.add(frame["candidate"]["sdpMLineIndex"])

    listening = asyncio.ensure_future(listen())
    sent: dict[int, float] = {}
    started = time.monotonic()
    killed_at = 0.0
    i = 0
    try:
        while time.monotonic() - started < SEND_FOR:
            if not killed_at and time.monotonic() - started >= KILL_AFTER:
                group.kill(group.primary_port)
                killed_at = time.monotonic()
            i += 1
            candidate = {"candidate": "candidate:1 1 udp 1 192.0.2.1 9 typ host"}
            await bob.send(
                json.dumps(
                    {
                        "type": "call.candidate",
                        "call_id": call_id,
                        "candidate": {**candidate, "sdpMLineIndex": i},
                    }
                )
            )
            sent[i] = time.monotonic()
            await asyncio.sleep(SEND_EVERY)
        await asyncio.sleep(1.0)
    finally:
        listening.cancel()
        await asyncio.gather(listening, return_exceptions=True)
        stop.set()
        watcher.join(timeout=10)

    lost = sorted(n for n in sent if n not in received)
    # The relay resumed: the last two seconds' frames all arrived.
    assert not [n for n in lost if sent[n] > time.monotonic() - 3.0], lost
    assert received, "nothing was relayed"
    # Before the kill, nothing was lost.
    assert not [n for n in lost if sent[n] < killed_at], lost
    call = await database_sync_to_async(Call.objects.get)(pk=call_id)
    assert call.state == CallState.CONNECTED
    # The ticket from before the failover opens a socket once.
    key = ticket.json()["ticket"]
    socket = await websockets.connect(
        f"{second.ws}/ws/calls/?ticket={key}", origin=second.http
    )
    await socket.close()
    # The revocation from before the failover holds.
    after = requests.get(tokens_url, headers=carol_auth, timeout=10)
    assert after.status_code == 401
    # /readyz: down during the gap, ready after.
    statuses = [status for at, status in readyz if at > killed_at]
    assert 503 in statuses, readyz
    assert statuses[-1] == 200
    await alice.close()
    await bob.close()
