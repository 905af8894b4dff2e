"""Our channel layers: the in-memory sweep and the pipelined Redis publisher."""

from __future__ import annotations

import asyncio
import os
import time

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from tests.webrtc.servers import redis_reachable
from veza.channel_layers import InMemoryChannelLayer, RedisPubSubChannelLayer

REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"

pytestmark = pytest.mark.asyncio
needs_redis = pytest.mark.skipif(
    not redis_reachable(REDIS_URL),
    reason=f"Redis is not reachable at {REDIS_URL} (set REDIS_URL)",
)


async def test_the_in_memory_layer_still_expires_messages(monkeypatch):
    layer = InMemoryChannelLayer(expiry=10)
    clock = [1000.0]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    await layer.send("stale", {"type": "frame"})
    await layer.group_add("devices", "stale")
    clock[0] += 11
    await layer.send("fresh", {"type": "frame", "n": 1})
    assert await layer.receive("fresh") == {"type": "frame", "n": 1}
    # The sweep dropped the expired message and its channel's memberships.
    assert "stale" not in layer.channels
    assert "stale" not in layer.groups.get("devices", {})


@needs_redis
async def test_a_burst_far_over_the_pool_size_arrives_whole_and_in_order():
    # redis-py's pool holds 100 connections; a connection per publish made
    # every frame over that fail with MaxConnectionsError.
    layer = RedisPubSubChannelLayer(hosts=[{"address": REDIS_URL}])
    try:
        channel = await layer.new_channel()
        await asyncio.gather(
            *(layer.send(channel, {"type": "frame", "n": n}) for n in range(2000))
        )
        received = [
            (await asyncio.wait_for(layer.receive(channel), 5))["n"]
            for _ in range(2000)
        ]
        assert received == list(range(2000))
    finally:
        await layer.flush()


@needs_redis
async def test_a_publish_to_a_dead_redis_fails_instead_of_hanging():
    layer = RedisPubSubChannelLayer(hosts=[{"address": "redis://127.0.0.1:1/0"}])
    try:
        with pytest.raises((RedisConnectionError, OSError)):
            await asyncio.wait_for(layer.send("nobody", {"type": "frame"}), 10)
    finally:
        await layer.flush()
