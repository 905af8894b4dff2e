"""API tokens: authentication with a short-lived cache, expiry, revocation."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import transaction
from django.db.models import Model
from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver
from django.utils import timezone
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from veza import metrics

# Bound once: .labels() validates and takes a lock on every call.
_HIT = metrics.CACHE_HITS.labels("api_token")
_MISS = metrics.CACHE_MISSES.labels("api_token")


def _cache_key(key: str) -> str:
    # v2: an entry holds the user's and the token's columns, not the models.
    return f"veza:api-token:v2:{key}"


def _cache_entry(
    user: Any, token: Token
) -> tuple[str | None, dict[str, Any], dict[str, Any]]:
    return (token._state.db, _columns(user), _columns(token))


def _columns(instance: Model) -> dict[str, Any]:
    return {
        f.attname: getattr(instance, f.attname) for f in instance._meta.concrete_fields
    }


def _credentials(entry: tuple[Any, ...]) -> tuple[Any, Token]:
    # Model.from_db builds an instance from stored columns, as a query does.
    db, user_columns, token_columns = entry
    user_field = Token._meta.get_field("user")
    user = _instance(user_field.related_model, db, user_columns)
    token = _instance(Token, db, token_columns)
    user_field.set_cached_value(token, user)
    return user, token


def _instance(model: type[Model], db: str | None, columns: dict[str, Any]) -> Any:
    # In the model's field order (what from_db takes); a column the entry
    # lacks (one added since it was cached) is deferred, read on first use.
    names = [f.attname for f in model._meta.concrete_fields if f.attname in columns]
    return model.from_db(db, names, [columns[name] for name in names])


def token_key(header: str, *, keyword: str = TokenAuthentication.keyword) -> str | None:
    """The key of an `Authorization: Token <key>` header whose key is plain
    ASCII letters and digits, as DRF makes them; None for any other header,
    which DRF's own parser (and its error messages) should judge."""
    name, _, key = header.partition(" ")
    if name == keyword and key.isascii() and key.isalnum():
        return key
    return None


class CachedTokenAuthentication(TokenAuthentication):
    """DRF token auth that remembers the user for API_TOKEN_CACHE_SECONDS.

    Saves a database query on every API call. Deleting a token clears its
    entry at once (in every process when the cache is Redis); a deactivated
    user is honoured within the cache lifetime.
    """

    def authenticate(self, request: Request) -> tuple[Any, Token] | None:
        # The usual header is read straight from the environ, without DRF's
        # bytes round trip; any other goes through DRF's parser.
        header = request._request.META.get("HTTP_AUTHORIZATION", "")
        key = token_key(header, keyword=self.keyword)
        if key is None:
            return super().authenticate(request)
        return self.authenticate_credentials(key)

    def authenticate_credentials(self, key: str) -> tuple[Any, Token]:
        user, token = self._credentials(key)
        if token_expired(token):
            token.delete()  # clears its cache entry too
            raise AuthenticationFailed(
                "The token has expired; get a new one.", code="token_expired"
            )
        return user, token

    def _credentials(self, key: str) -> tuple[Any, Token]:
        ttl = settings.API_TOKEN_CACHE_SECONDS
        if ttl <= 0:
            return super().authenticate_credentials(key)
        entry = cache.get(_cache_key(key))
        if entry is not None:
            _HIT.inc()
            return _credentials(entry)
        _MISS.inc()
        user, token = super().authenticate_credentials(key)
        cache.set(_cache_key(key), _cache_entry(user, token), ttl)
        return user, token


def token_expires_at(token: Token) -> dt.datetime:
    return token.created + dt.timedelta(days=settings.API_TOKEN_TTL_DAYS)


def token_expired(token: Token) -> bool:
    return token_expires_at(token) <= timezone.now()


@receiver(post_delete, sender=Token)
@receiver(post_save, sender=Token)
def _forget_token(sender: type[Token], instance: Token, **kwargs: Any) -> None:
    cache.delete(_cache_key(instance.key))


@receiver(pre_save, sender=get_user_model())
def _revoke_tokens_on_credential_change(
    sender: type[Model], instance: Any, update_fields: Any = None, **kwargs: Any
) -> None:
    """A new password or a deactivation ends every API token of the user, as
    Django ends the user's sessions: a token is a password's stand-in."""
    if instance.pk is None or kwargs.get("raw"):
        return
    if update_fields is not None and not {"password", "is_active"} & set(update_fields):
        return  # a login's last_login, say
    old = sender._default_manager.filter(pk=instance.pk).values("password", "is_active")
    row = old.first()
    if row is None:
        return
    # set_password() keeps the raw password in _password until the save; a
    # re-hash at login (new hasher settings) clears it first and is no change
    # of credentials.
    new_password = row["password"] != instance.password and (
        getattr(instance, "_password", None) is not None
    )
    if new_password or (row["is_active"] and not instance.is_active):
        from veza.services import tokens_revoke  # it imports this module

        user_id = instance.pk
        transaction.on_commit(lambda: tokens_revoke(user_id=user_id))
