"""Who may scrape /metrics: a bearer token or an allow-listed address."""

from __future__ import annotations

import hmac
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django_prometheus import exports

from veza.errors import MetricsUnauthorized
from veza.exception_handler import error_response
from veza.lockout import client_address


def metrics_guarded() -> bool:
    """Open in development and staging until a token or an address is set;
    always closed in production (per-route traffic and the catalogue's size
    are nobody else's business)."""
    return bool(
        settings.PRODUCTION or settings.METRICS_TOKEN or settings.METRICS_ALLOWED_IPS
    )


def metrics_allowed(request: HttpRequest) -> bool:
    if not metrics_guarded():
        return True
    # The client's address as the login lockout takes it: behind nginx,
    # REMOTE_ADDR is nginx's own for everyone.
    if client_address(request) in settings.METRICS_ALLOWED_IPS:
        return True
    scheme, _, token = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    return bool(
        settings.METRICS_TOKEN
        and scheme.lower() == "bearer"
        and hmac.compare_digest(token.encode(), settings.METRICS_TOKEN.encode())
    )


def metrics(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
    """django-prometheus's exporter, behind `metrics_allowed`."""
    if not metrics_allowed(request):
        return error_response(MetricsUnauthorized())
    return exports.ExportToDjangoView(request)
