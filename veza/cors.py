"""django-cors-headers' middleware, cheaper for calls without an Origin."""

from __future__ import annotations

from corsheaders import middleware
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.utils.cache import patch_vary_headers


class CorsMiddleware(middleware.CorsMiddleware):
    """The same answers, without building request.headers for a call that
    carries no Origin header: that is every call not made by a browser page,
    and building them was a tenth of a playback URL call."""

    def add_response_headers(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        if request.META.get("HTTP_ORIGIN"):
            return super().add_response_headers(request, response)
        # What the parent does for such a call: vary on Origin, nothing more.
        enabled = getattr(request, "_cors_enabled", None)
        if enabled is None:
            enabled = self.is_enabled(request)
        if enabled:
            patch_vary_headers(response, ("origin",))
        return response
