"""The site icon at /favicon.ico, where browsers ask for it on every page."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponseRedirect
from django.templatetags.static import static
from django.views.decorators.cache import cache_control


@cache_control(max_age=86400, public=True)
def favicon(request: HttpRequest) -> HttpResponseRedirect:
    # A redirect to the static file: its URL (hashed in production) is the
    # static storage's to say, and browsers take an SVG icon.
    return HttpResponseRedirect(static("veza/favicon.svg"))
