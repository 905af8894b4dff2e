"""API paths no route matches: the route's other slash form, else a JSON 404."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.urls import Resolver404, resolve
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from veza.errors import NotFound
from veza.exception_handler import error_response


@csrf_exempt
def api_unmatched(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
    """Some API routes end in a slash and some do not, and a client cannot
    know which: both forms are answered by the same view. A redirect would
    lose a POST's body (and Django refuses one with DEBUG on, as a 500)."""
    path = request.path_info
    other = path[:-1] if path.endswith("/") else path + "/"
    try:
        match = resolve(other, getattr(request, "urlconf", None))
    except Resolver404:
        match = None
    if match is None or match.func is api_unmatched:
        return error_response(NotFound("No API route matches this path."))
    view = match.func
    # The CSRF middleware only saw this view; a view that wants the check
    # (DRF's do not: they check session callers themselves) gets it here.
    if not getattr(view, "csrf_exempt", False):
        view = csrf_protect(view)
    request.resolver_match = match
    return view(request, *match.args, **match.kwargs)
