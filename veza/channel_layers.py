"""Channel layers: in-memory for one process, Redis pub/sub with pipelined publishes."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from channels import layers
from channels_redis import pubsub
from channels_redis.utils import _wrap_close


class InMemoryChannelLayer(layers.InMemoryChannelLayer):
    """Channels' in-memory layer, sweeping expired messages once a second.

    Channels sweeps every channel and every group membership on each receive
    and group send, so with a thousand sockets each relayed frame cost a pass
    over two thousand entries, and latency grew to seconds. Expiry (60 s by
    default) does not need that precision.
    """

    _swept = 0.0

    def _clean_expired(self) -> None:
        now = time.monotonic()
        if now - self._swept >= 1.0:
            self._swept = now
            super()._clean_expired()


class _Shard(pubsub.RedisSingleShardConnection):
    """A shard whose publishes share one connection, batched per round trip.

    channels-redis holds the shard's lock across each PUBLISH round trip, so a
    process publishes one frame at a time. Taking a pooled connection per
    PUBLISH instead runs out of connections (redis-py's pool stops at 100)
    as soon as the event loop stalls for a moment and frames pile up, and
    every frame over that is dropped. So publishes queue here and one task
    sends whatever has queued as one pipeline: a stall makes the next batch
    bigger, never a frame lost, and each round trip carries many frames.
    """

    def __init__(self, host: dict[str, Any], channel_layer: Any) -> None:
        super().__init__(host, channel_layer)
        self._queued: list[tuple[str, bytes, asyncio.Future[None]]] = []
        self._sender: asyncio.Task[None] | None = None

    async def publish(self, channel: str, message: bytes) -> None:
        done = asyncio.get_running_loop().create_future()
        self._queued.append((channel, message, done))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.ensure_future(self._send_queued())
        await done

    async def _send_queued(self) -> None:
        async with self._lock:
            self._ensure_redis()
            redis = self._redis
        while self._queued:
            batch, self._queued = self._queued, []
            try:
                async with redis.pipeline(transaction=False) as pipe:
                    for channel, message, _ in batch:
                        pipe.publish(channel, message)
                    await pipe.execute()
            except asyncio.CancelledError:
                for _, _, done in batch + self._queued:
                    done.cancel()
                raise
            except Exception as error:  # the publishers decide what it means
                for _, _, done in batch:
                    if not done.done():
                        done.set_exception(error)
            else:
                for _, _, done in batch:
                    if not done.done():
                        done.set_result(None)


class _LoopLayer(pubsub.RedisPubSubLoopLayer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        shards: list[Any] = self._shards  # type: ignore[has-type]
        self._shards = [_Shard(shard.host, self) for shard in shards]


class RedisPubSubChannelLayer(pubsub.RedisPubSubChannelLayer):
    """channels-redis's pub/sub layer with `_Shard` publishing."""

    def _get_layer(self) -> _LoopLayer:
        loop = asyncio.get_running_loop()
        try:
            return self._layers[loop]
        except KeyError:
            layer = _LoopLayer(*self._args, **self._kwargs, channel_layer=self)
            self._layers[loop] = layer
            _wrap_close(self, loop)
            return layer
