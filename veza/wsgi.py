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
    """Django with `API_MIDDLEWARE` instead of `MIDDLEWARE`.

    Django builds its middleware chain from settings.MIDDLEWARE once, when a
    handler is created, so the list is swapped for that moment only (at
    import, before any request).
    """

    def load_middleware(self, is_async: bool = False) -> None:
        full = settings.MIDDLEWARE
        settings.MIDDLEWARE = settings.API_MIDDLEWARE
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = full


_site = WSGIHandler()
_api = ApiWSGIHandler()


def application(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """The JSON API and the origins on the short chain, everything else (admin,
    pages, static files) on the full one."""
    if environ.get("PATH_INFO", "").startswith(settings.API_MIDDLEWARE_PREFIXES):
        return _api(environ, start_response)
    return _site(environ, start_response)
