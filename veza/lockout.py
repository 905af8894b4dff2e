"""Login lockout (django-axes) on every login path: the client address, the 429."""

from __future__ import annotations

import math
from typing import Any

from axes.backends import AxesStandaloneBackend
from axes.helpers import get_cool_off
from django.http import HttpRequest, HttpResponse
from rest_framework.throttling import BaseThrottle

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


def client_address(request: HttpRequest) -> str:
    """The client's address exactly as the API's rate limits take it (DRF's,
    from NUM_PROXIES = VEZA_TRUSTED_PROXY_COUNT): REMOTE_ADDR, or the entry of
    X-Forwarded-For that many trusted proxies back. django-axes would
    otherwise prefer the header as the client wrote it."""
    return BaseThrottle().get_ident(request)  # type: ignore[arg-type]


def lockout_response(
    request: HttpRequest, original_response: Any = None, credentials: Any = None
) -> HttpResponse:
    """429 until the cool-off ends: the API's error shape under /api/, a
    short page elsewhere (the admin's and the calls page's login forms)."""
    cool_off = get_cool_off(request)
    seconds = math.ceil(cool_off.total_seconds()) if cool_off else 0
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
