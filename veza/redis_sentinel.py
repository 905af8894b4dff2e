"""The Django cache's Redis connections, to the master the Sentinels name."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from redis.sentinel import Sentinel, SentinelConnectionPool


class SentinelMasterPool(SentinelConnectionPool):
    """Django's RedisCache builds its pools with `pool_class.from_url(LOCATION)`:
    this one reads the master's name and database from that URL
    (`redis://<master>/<db>`) and asks REDIS_SENTINELS where the master is.

    redis-py does the rest: a connection asks the Sentinels for the master's
    address when it connects, and after a failover the next connection goes
    to the promoted replica.
    """

    @classmethod
    def from_url(cls, url: str, **options: Any) -> SentinelMasterPool:
        parts = urlsplit(url)
        sentinels = Sentinel(
            settings.REDIS_SENTINELS,
            sentinel_kwargs={"password": settings.REDIS_SENTINEL_PASSWORD or None},
        )
        return cls(
            parts.netloc
            or settings.REDIS_SENTINEL_MASTER,  # as written: names are case-sensitive
            sentinels,
            db=int(parts.path.strip("/") or 0),
            password=settings.REDIS_PASSWORD or None,
            **options,
        )
