"""ICE configuration: STUN servers and TURN credentials (static or TURN REST)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from typing import Any, TypedDict

from django.conf import settings

from veza import config


class IceServer(TypedDict, total=False):
    urls: list[str]
    username: str
    credential: str


class IceConfig(TypedDict):
    iceServers: list[IceServer]
    hasTurn: bool
    ttl: int | None


def turn_rest_credential(
    *, secret: str, user_id: str, ttl: int, now: float | None = None
) -> tuple[str, str]:
    """A TURN REST (draft-uberti-behave-turn-rest) username and credential.

    The username carries the expiry time; coturn recomputes the HMAC with
    each of its secrets and refuses an expiry in the past.
    """
    expiry = int(now if now is not None else time.time()) + ttl
    username = f"{expiry}:{user_id}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    # Padded standard base64: unpadded credentials fail in coturn.
    return username, base64.b64encode(digest).decode("ascii")


def _urls(values: list[str], schemes: tuple[str, ...]) -> list[str]:
    # Bad URLs are reported by rule veza.E034 and left out here.
    return [u.strip() for u in values if u.strip().startswith(schemes)]


def turn_mode() -> str | None:
    return config.webrtc_turn_mode(
        urls=_urls(settings.WEBRTC_TURN_URLS, config.TURN_SCHEMES),
        username=settings.WEBRTC_TURN_USERNAME,
        credential=settings.WEBRTC_TURN_CREDENTIAL,
        secrets=settings.WEBRTC_TURN_SECRETS,
    )


def ice_config(*, user: Any) -> IceConfig:
    """The servers for a user's RTCPeerConnection.

    TURN goes only to authenticated users unless anonymous TURN is allowed,
    so the relay is not an open proxy.
    """
    servers: list[IceServer] = []
    stun = _urls(settings.WEBRTC_STUN_URLS, config.STUN_SCHEMES)
    if stun:
        servers.append({"urls": stun})
    mode = turn_mode()
    authenticated = bool(user is not None and user.is_authenticated)
    if mode is None or not (authenticated or settings.WEBRTC_TURN_ALLOW_ANONYMOUS):
        return {"iceServers": servers, "hasTurn": False, "ttl": None}
    turn_urls = _urls(settings.WEBRTC_TURN_URLS, config.TURN_SCHEMES)
    if mode == "static":
        servers.append(
            {
                "urls": turn_urls,
                "username": settings.WEBRTC_TURN_USERNAME,
                "credential": settings.WEBRTC_TURN_CREDENTIAL,
            }
        )
        return {"iceServers": servers, "hasTurn": True, "ttl": None}
    ttl = int(settings.WEBRTC_TURN_TTL)
    # An anonymous user gets a random id, so two anonymous credentials differ.
    user_id = str(user.pk) if authenticated else f"anon-{secrets.token_hex(8)}"
    signing_secret = next(s for s in settings.WEBRTC_TURN_SECRETS if s)
    username, credential = turn_rest_credential(
        secret=signing_secret, user_id=user_id, ttl=ttl
    )
    servers.append({"urls": turn_urls, "username": username, "credential": credential})
    return {"iceServers": servers, "hasTurn": True, "ttl": ttl}
