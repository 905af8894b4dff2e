"""The one error base class: every domain failure carries a stable code."""

from __future__ import annotations

from typing import Any, ClassVar


class DomainError(Exception):
    """A failure the API reports as `{"error": {"code", "message", "details"}}`."""

    status_code = 400
    code = "bad_request"
    default_message = "The request could not be processed."
    # Response headers the status calls for (a 401's challenge); an
    # instance may add its own (a 429's Retry-After).
    default_headers: ClassVar[dict[str, str]] = {}

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = message or self.default_message
        if code is not None:
            self.code = code
        self.details = details or {}
        self.headers = {**self.default_headers, **(headers or {})}
        super().__init__(self.message)


class NotFound(DomainError):
    status_code = 404
    code = "not_found"
    default_message = "Not found."


class InvalidCredentials(DomainError):
    status_code = 401
    code = "invalid_credentials"
    default_message = "No active account has this username and password."
    default_headers: ClassVar[dict[str, str]] = {"WWW-Authenticate": "Token"}


class AccountLocked(DomainError):
    status_code = 429
    code = "account_locked"
    default_message = "Too many failed logins; try again later."


class MetricsUnauthorized(DomainError):
    status_code = 401
    code = "metrics_token_required"
    default_message = "Scrape with `Authorization: Bearer <METRICS_TOKEN>`."
    default_headers: ClassVar[dict[str, str]] = {
        "WWW-Authenticate": 'Bearer realm="metrics"'
    }


class Forbidden(DomainError):
    status_code = 403
    code = "forbidden"
    default_message = "You do not have permission to do this."


class Conflict(DomainError):
    status_code = 409
    code = "conflict"
    default_message = "The request conflicts with the current state."


class PayloadTooLarge(DomainError):
    status_code = 413
    code = "payload_too_large"
    default_message = "The upload is larger than allowed."


class UnsupportedMedia(DomainError):
    status_code = 415
    code = "unsupported_media"
    default_message = "The file is not decodable audio."


class RangeNotSatisfiableError(DomainError):
    status_code = 416
    code = "range_not_satisfiable"
    default_message = "The range is outside the file."


class ServiceUnavailable(DomainError):
    status_code = 503
    code = "service_unavailable"
    default_message = "A backing service is unavailable; try again later."


class InvalidParameter(DomainError):
    status_code = 400
    code = "invalid_parameter"
    default_message = "A query parameter is invalid."
