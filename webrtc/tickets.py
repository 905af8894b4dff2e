"""One-time websocket tickets for API clients, kept in the shared cache."""

from __future__ import annotations

import secrets
import time

from django.conf import settings
from django.core.cache import cache


def _key(ticket: str) -> str:
    return f"webrtc:ticket:{ticket}"


def ticket_issue(*, user_id: int) -> tuple[str, int]:
    """A ticket for `user_id` and its lifetime in seconds."""
    ttl = int(settings.WEBRTC_TICKET_TTL)
    ticket = secrets.token_urlsafe(32)
    cache.set(_key(ticket), (user_id, time.time() + ttl), timeout=ttl)
    return ticket, ttl


async def ticket_redeem(ticket: str) -> int | None:
    """The user id of a valid ticket, which is used up; None otherwise."""
    if not ticket or len(ticket) > 100:
        return None
    key = _key(ticket)
    value = await cache.aget(key)
    # Only one redeemer can delete the key, even across processes (Redis
    # DEL is atomic), so a ticket opens at most one socket.
    if value is None or not await cache.adelete(key):
        return None
    user_id, expires_at = value
    if time.time() >= expires_at:
        return None
    return int(user_id)
