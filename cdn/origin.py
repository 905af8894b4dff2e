"""Short-lived HMAC tokens for URLs that our own origin serves."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

from django.conf import settings
from django.utils.crypto import salted_hmac


def _key() -> bytes:
    if settings.VEZA_ORIGIN_TOKEN_KEY:
        return str(settings.VEZA_ORIGIN_TOKEN_KEY).encode()
    # Derived, so rotating SECRET_KEY also rotates origin tokens.
    return salted_hmac("veza.origin-token", "key", algorithm="sha256").digest()


def origin_token(path: str, expires: int) -> str:
    """The token for `path` (a URL path, or a directory prefix ending in /)."""
    mac = hmac.new(_key(), f"{path}\n{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def audience_scope(scope: str, *, shared: bool) -> str:
    """What a token signs: `scope`, and whom the URL was handed to.

    A URL minted while its track was public or unlisted ("shared") names
    that in its signature, and the origin checks it against the track's
    state now: making the track private revokes every such URL at once. URLs
    the owner got for a private track end when it is shared (the owner asks
    again).
    """
    return f"{scope}|{'shared' if shared else 'owner'}"


def origin_token_audience(scope: str, expires: str | int, token: str) -> bool | None:
    """Whether `token` was made for `scope` handed to anyone (True) or to the
    owner only (False); None when it is neither, or has expired."""
    for shared in (True, False):
        if origin_token_valid(audience_scope(scope, shared=shared), expires, token):
            return shared
    return None


def origin_token_valid(
    path: str, expires: str | int, token: str, *, now: float | None = None
) -> bool:
    """True when `token` was made for `path` and `expires` has not passed."""
    try:
        expires_at = int(expires)
    except (TypeError, ValueError):
        return False
    if expires_at < (time.time() if now is None else now):
        return False
    return hmac.compare_digest(origin_token(path, expires_at), token)
