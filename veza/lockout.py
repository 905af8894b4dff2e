"""Login lockout (django-axes) on every login path: the client address, the 429."""

from __future__ import annotations

import math
from typing import Any

from axes.backends import AxesStandaloneBackend
from django.conf import settings
from django.http import HttpRequest, HttpResponse

from veza.errors import AccountLocked
from veza.exception_handler import error_response


class LockoutBackend(AxesStandaloneBackend):
    """django-axes' backend, letting a call without a request pass to the next
    backend: every login path (admin, calls page, API token) passes its
    request; only Django's test client's `login()` does not."""

    def authenticate(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        if request is None:
            return None
        return super().authenticate(request, *args, **kwargs)


def client_address(request: HttpRequest) -> str | None:
    """The client's address, as the API's rate limits take it.

    REMOTE_ADDR, or with VEZA_TRUSTED_PROXY_COUNT proxies in front the entry
    of X-Forwarded-For that many hops back: never an entry the client wrote
    (django-axes would otherwise prefer the header as sent).
    """
    proxies = settings.REST_FRAMEWORK["NUM_PROXIES"]
    remote = request.META.get("REMOTE_ADDR")
    if not proxies:
        return remote
    forwarded = [
        part.strip()
        for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
        if part.strip()
    ]
    return forwarded[-proxies] if len(forwarded) >= proxies else remote


def lockout_response(
    request: HttpRequest, original_response: Any = None, credentials: Any = None
) -> HttpResponse:
    """429 until the cool-off ends: the API's error shape under /api/, a
    short page elsewhere (the admin's and the calls page's login forms)."""
    seconds = math.ceil(settings.AXES_COOLOFF_TIME.total_seconds())
    headers = {"Retry-After": str(seconds)}
    if request.path.startswith("/api/"):
        error = AccountLocked(details={"retry_after_seconds": seconds})
        return error_response(error, headers=headers)
    return HttpResponse(
        "Too many failed logins for this account or address; "
        f"try again in {math.ceil(seconds / 60)} minutes.",
        status=429,
        content_type="text/plain; charset=utf-8",
        headers=headers,
    )
