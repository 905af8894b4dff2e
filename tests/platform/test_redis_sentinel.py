"""Redis under Sentinel: the configuration rules, and the shared cache and
the channel layer through a failover of a real primary.

The failover test starts a Redis primary, a replica and three Sentinels
(Debian's redis-server, `down-after-milliseconds` 500) and points the cache
and a channel layer at them the way the settings do. A sender publishes a
frame every 20 ms to a group another layer instance listens to, and a
thread writes and reads the cache, while the primary is killed (SIGKILL).
Once the Sentinels promote the replica, the cache answers again, frames
sent from then on all arrive, and a value written (and replicated) before
the failover is still there.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from django.core.cache import caches
from redis import Redis

from tests.platform.test_pure import raw
from tests.redis_sentinel import MASTER, redis_server_binary, start_sentinel_group
from veza import config
from veza.channel_layers import RedisPubSubChannelLayer

# --- configuration rules ---------------------------------------------------


def problem_ids(resolved: config.ResolvedConfig) -> set[str]:
    return {p.id for p in resolved.problems}


def test_sentinels_are_parsed_and_satisfy_the_shared_cache_rule():
    resolved = config.resolve(
        raw(
            veza_env="production",
            redis_url="",
            redis_sentinels=("10.0.0.1:26379", " 10.0.0.2:26380", "[::1]:26381"),
            redis_sentinel_master="veza",
        )
    )
    assert resolved.redis_sentinels == (
        ("10.0.0.1", 26379),
        ("10.0.0.2", 26380),
        ("::1", 26381),
    )
    assert "veza.E020" not in problem_ids(resolved)


@pytest.mark.parametrize(
    ("sentinels", "master", "expected"),
    [
        (("10.0.0.1:26379",), "", {"veza.E021"}),
        ((), "veza", {"veza.E021"}),
        (("10.0.0.1",), "veza", {"veza.E021", "veza.E022"}),
        (("10.0.0.1:26379", "nope:x"), "veza", {"veza.E022"}),
    ],
)
def test_half_configured_sentinels_are_refused(sentinels, master, expected):
    resolved = config.resolve(
        raw(redis_url="", redis_sentinels=sentinels, redis_sentinel_master=master)
    )
    assert problem_ids(resolved) == expected
    usable = "veza.E021" not in expected
    assert bool(resolved.redis_sentinels) == usable


def test_a_url_beside_sentinels_is_ignored_with_a_warning():
    resolved = config.resolve(
        raw(redis_sentinels=("10.0.0.1:26379",), redis_sentinel_master="veza")
    )
    assert problem_ids(resolved) == {"veza.E023"}
    assert resolved.redis_sentinels == (("10.0.0.1", 26379),)


# --- a failover ------------------------------------------------------------

requires_redis = pytest.mark.skipif(
    redis_server_binary() is None,
    reason="redis-server is not installed (apt-get install redis-server)",
)


@pytest.fixture
def sentinel_group():
    group = start_sentinel_group()
    yield group
    group.stop()


@pytest.fixture
def sentinel_settings(settings, sentinel_group):
    """The cache as the settings build it for REDIS_SENTINELS."""
    sentinels = [("127.0.0.1", p) for p in sentinel_group.sentinel_ports]
    settings.REDIS_SENTINELS = sentinels
    settings.REDIS_SENTINEL_MASTER = MASTER
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://{MASTER}/0",
            "OPTIONS": {"pool_class": "veza.redis_sentinel.SentinelMasterPool"},
        }
    }
    return {"sentinels": sentinels, "master_name": MASTER, "db": 0}


class Timeline:
    """When each kind of operation failed and succeeded (seconds since start)."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.failures: list[float] = []
        self.successes: list[float] = []
        self.lock = threading.Lock()

    def now(self) -> float:
        return time.monotonic() - self.started

    def record(self, ok: bool) -> None:
        with self.lock:
            (self.successes if ok else self.failures).append(self.now())


def keep_using_the_cache(timeline: Timeline, stop: threading.Event) -> None:
    cache = caches.create_connection("default")
    n = 0
    while not stop.is_set():
        n += 1
        try:
            cache.set("sentinel:n", n, 60)
            timeline.record(cache.get("sentinel:n") == n)
        except Exception:
            timeline.record(False)
        time.sleep(0.02)


async def relay(host: dict, timeline: Timeline, kill_at: float, kill, until: float):
    """Publish frame i every 20 ms from one layer to a group another layer
    listens to; returns (frames sent, frames received)."""
    sender = RedisPubSubChannelLayer(hosts=[host])
    listener = RedisPubSubChannelLayer(hosts=[host])
    channel = await listener.new_channel()
    await listener.group_add("call", channel)
    received: set[int] = set()

    async def listen() -> None:
        while True:
            try:
                message = await listener.receive(channel)
            except asyncio.CancelledError:
                raise
            except Exception:  # the connection went with the primary
                await asyncio.sleep(0.05)
                continue
            received.add(message["n"])

    listening = asyncio.ensure_future(listen())
    sent: dict[int, float] = {}
    i = 0
    killed = False
    while timeline.now() < until:
        if not killed and timeline.now() >= kill_at:
            kill()
            killed = True
        i += 1
        try:
            await asyncio.wait_for(
                sender.group_send("call", {"type": "frame", "n": i}), timeout=1
            )
            sent[i] = timeline.now()
            timeline.record(True)
        except Exception:
            timeline.record(False)
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.5)  # the last frames in flight
    listening.cancel()
    await asyncio.gather(listening, return_exceptions=True)
    await sender.flush()
    await listener.flush()
    return sent, received


@requires_redis
@pytest.mark.usefixtures("sentinel_settings")
def test_cache_and_channel_layer_ride_through_a_failover(
    sentinel_group, sentinel_settings
):
    cache = caches.create_connection("default")
    # Written before the failover, and on the replica before the kill.
    cache.set("ticket:before", "unused", 300)
    primary = Redis(port=sentinel_group.primary_port)
    assert primary.wait(1, 2000) == 1
    assert cache.get("ticket:before") == "unused"

    cache_timeline, relay_timeline = Timeline(), Timeline()
    stop = threading.Event()
    writer = threading.Thread(target=keep_using_the_cache, args=(cache_timeline, stop))
    writer.start()
    kill_at = 1.0
    try:
        sent, received = asyncio.run(
            relay(
                sentinel_settings,
                relay_timeline,
                kill_at,
                lambda: sentinel_group.kill(sentinel_group.primary_port),
                until=12.0,
            )
        )
    finally:
        stop.set()
        writer.join(timeout=10)

    # The Sentinels promoted the replica.
    promoted = Redis(port=sentinel_group.replica_port).info("replication")
    assert promoted["role"] == "master"
    # The cache failed only around the failover and answers again.
    assert cache_timeline.failures, "the failover went unnoticed"
    back = max(cache_timeline.failures)
    assert cache_timeline.successes[-1] > back
    assert back - kill_at < 10
    assert cache.get("ticket:before") == "unused"
    # Frames sent once the new primary took publishes all arrive.
    relay_back = max(relay_timeline.failures, default=kill_at)
    after = [n for n, at in sent.items() if at > relay_back + 1.0]
    assert after, "no frames were sent after the failover"
    assert set(after) <= received
    # Before the kill, nothing was lost either.
    before = [n for n, at in sent.items() if at < kill_at]
    assert set(before) <= received
