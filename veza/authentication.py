"""API token authentication with a short-lived cache of token to user."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token

from veza import metrics


def _cache_key(key: str) -> str:
    return f"veza:api-token:{key}"


class CachedTokenAuthentication(TokenAuthentication):
    """DRF token auth that remembers the user for API_TOKEN_CACHE_SECONDS.

    Saves a database query on every API call. Deleting a token clears its
    entry at once (in every process when the cache is Redis); a deactivated
    user is honoured within the cache lifetime.
    """

    def authenticate_credentials(self, key: str) -> tuple[Any, Token]:
        ttl = settings.API_TOKEN_CACHE_SECONDS
        if ttl <= 0:
            return super().authenticate_credentials(key)
        cached = cache.get(_cache_key(key))
        if cached is not None:
            metrics.CACHE_HITS.labels("api_token").inc()
            return cached
        metrics.CACHE_MISSES.labels("api_token").inc()
        user, token = super().authenticate_credentials(key)
        cache.set(_cache_key(key), (user, token), ttl)
        return user, token


@receiver(post_delete, sender=Token)
@receiver(post_save, sender=Token)
def _forget_token(sender: type[Token], instance: Token, **kwargs: Any) -> None:
    cache.delete(_cache_key(instance.key))
