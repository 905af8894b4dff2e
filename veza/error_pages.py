"""Project 404/500 handlers: JSON error shape for API paths, HTML elsewhere."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views import defaults

from veza.errors import DomainError, NotFound
from veza.exception_handler import error_response

JSON_PREFIXES = ("/api/", "/origin/")


def _wants_json(request: HttpRequest) -> bool:
    return request.path.startswith(JSON_PREFIXES)


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _wants_json(request):
        return error_response(NotFound())
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if _wants_json(request):
        error = DomainError("An unexpected error occurred.", code="internal_error")
        return error_response(error, status=500)
    return defaults.server_error(request)
