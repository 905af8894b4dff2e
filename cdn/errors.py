"""Errors of the cdn app, each with a stable code."""

from veza.errors import ServiceUnavailable


class CdnSigningError(Exception):
    """Signing failed; callers fall back to the next URL source or refuse."""


class CdnUnavailable(ServiceUnavailable):
    code = "cdn_unavailable"
    default_message = "The CDN cannot sign this URL and fallback is turned off."
