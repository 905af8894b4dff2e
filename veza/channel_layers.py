"""The Redis pub/sub channel layer, publishing frames concurrently."""

from __future__ import annotations

import asyncio
from typing import Any

from channels_redis import pubsub
from channels_redis.utils import _wrap_close


class _Shard(pubsub.RedisSingleShardConnection):
    async def publish(self, channel: str, message: bytes) -> None:
        # channels-redis holds the shard's lock across the PUBLISH round trip,
        # so a process publishes one frame at a time and, under load, each
        # waits a full event-loop turn for the one before. The lock only has
        # to guard creating the client; the pool gives each PUBLISH its own
        # connection.
        async with self._lock:
            self._ensure_redis()
            redis = self._redis
        await redis.publish(channel, message)


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
