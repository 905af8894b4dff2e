"""Middleware that counts and times every HTTP request, cheaply."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest
from django.http.response import HttpResponseBase

from veza import metrics


class RequestMetricsMiddleware:
    """One counter and one histogram per request, labelled by route name.

    Instead of django-prometheus's middleware pair, which updates about ten
    labelled metrics per request: on the playback hot path that was an
    eighth of Django's time per request (docs/BENCHMARKS.md).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]):
        self.get_response = get_response
        # Label children by their values: .labels() validates and locks on
        # every call, and the set of routes, methods and statuses is small.
        self._timers: dict[str, Any] = {}
        self._counters: dict[tuple[str, str, int], Any] = {}

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        started = time.perf_counter()
        response = self.get_response(request)
        match = request.resolver_match
        # Route names, never raw paths: label values must stay few.
        view = (match.view_name or "unnamed") if match is not None else "unresolved"
        timer = self._timers.get(view)
        if timer is None:
            timer = self._timers[view] = metrics.HTTP_REQUEST_SECONDS.labels(view)
        timer.observe(time.perf_counter() - started)
        key = (view, request.method or "", response.status_code)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = metrics.HTTP_REQUESTS.labels(
                view, key[1], str(key[2])
            )
        counter.inc()
        return response
