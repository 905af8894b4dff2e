"""WSGI entry point: the production HTTP server (gunicorn) loads this."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import django
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "veza.settings.base")
django.setup(set_prefix=False)


class ApiWSGIHandler(WSGIHandler):
    """Django with another middleware list than `MIDDLEWARE`.

    Django builds its middleware chain from settings.MIDDLEWARE once, when a
    handler is created, so the list is swapped for that moment only (at
    import, before any request).
    """

    def __init__(self, middleware: list[str]) -> None:
        self.middleware = middleware
        super().__init__()

    def load_middleware(self, is_async: bool = False) -> None:
        full = settings.MIDDLEWARE
        settings.MIDDLEWARE = self.middleware
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = full


_site = WSGIHandler()
_api = ApiWSGIHandler(settings.API_MIDDLEWARE)
_token_api = ApiWSGIHandler(settings.API_TOKEN_MIDDLEWARE)


def application(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """The JSON API and the origins on a short chain (API calls with a DRF
    token on a shorter one), everything else (admin, pages, static files) on
    the full one."""
    path = environ.get("PATH_INFO", "")
    if path.startswith(settings.API_MIDDLEWARE_PREFIXES):
        if path.startswith(settings.API_TOKEN_MIDDLEWARE_PREFIXES) and environ.get(
            "HTTP_AUTHORIZATION", ""
        ).startswith("Token "):
            return _token_api(environ, start_response)
        return _api(environ, start_response)
    return _site(environ, start_response)
