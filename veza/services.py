"""Writes of the project app: API tokens issued and revoked."""

from __future__ import annotations

from typing import Any

from rest_framework.authtoken.models import Token

from veza.authentication import token_expired


def token_issue(*, user: Any) -> Token:
    """The user's API token: the current one, or a new one if it expired."""
    token, _ = Token.objects.get_or_create(user=user)
    if token_expired(token):
        token.delete()
        # get_or_create, for two logins at once: one creates, one reads.
        token, _ = Token.objects.get_or_create(user=user)
    return token


def tokens_revoke(*, user_id: int) -> None:
    """End every API token of the user, in every process at once."""
    for token in Token.objects.filter(user_id=user_id):
        token.delete()  # one by one: each delete clears its cache entry
