"""Which pages may open a websocket: this site's own origin, or a trusted one."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host
from django.utils.http import is_same_domain


def origin_allowed(scope: dict[str, Any]) -> bool:
    """Django's CSRF origin rule, for a websocket handshake.

    The Origin must be this site as the browser reached it (scheme, host and
    port: `ws` is `http`, `wss` or a proxy's X-Forwarded-Proto `https` is
    `https`), or one of CSRF_TRUSTED_ORIGINS. Channels' host-only check took
    any port and either scheme of an allowed host. A handshake without an
    Origin or with a Host outside ALLOWED_HOSTS is refused.
    """
    headers = {
        name.decode("latin-1").lower(): value.decode("latin-1")
        for name, value in scope.get("headers", [])
    }
    origin = headers.get("origin", "")
    host = headers.get("host", "")
    domain, _ = split_domain_port(host)
    if not origin or not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return False
    proxy_header, secure_value = settings.SECURE_PROXY_SSL_HEADER or ("", "")
    forwarded = headers.get(
        proxy_header.removeprefix("HTTP_").replace("_", "-").lower()
    )
    secure = scope.get("scheme") == "wss" or (
        forwarded is not None and forwarded.split(",")[0].strip() == secure_value
    )
    if origin == f"{'https' if secure else 'http'}://{host}":
        return True
    if origin in settings.CSRF_TRUSTED_ORIGINS:
        return True
    parsed = urlsplit(origin)
    return any(
        is_same_domain(parsed.netloc, trusted.netloc.lstrip("*"))
        for trusted in map(urlsplit, settings.CSRF_TRUSTED_ORIGINS)
        if "*" in trusted.netloc and trusted.scheme == parsed.scheme
    )


class SameOriginValidator:
    """ASGI middleware: refuse a websocket handshake `origin_allowed` refuses."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket" and not origin_allowed(scope):
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)
