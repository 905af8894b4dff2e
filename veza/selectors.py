"""Reads of the project app: a user's API tokens."""

from __future__ import annotations

from typing import Any

from rest_framework.authtoken.models import Token

from veza.authentication import token_expires_at


def token_list(*, user_id: int, current_key: str | None) -> list[dict[str, Any]]:
    """The user's API tokens: when made, when they expire, which one asks."""
    return [
        {
            "created": token.created,
            "expires_at": token_expires_at(token),
            "current": token.key == current_key,
        }
        for token in Token.objects.filter(user_id=user_id)
    ]
