"""Errors of media storage, each with a stable code where the API shows it."""

from veza.errors import DomainError, ServiceUnavailable


class StorageUnavailable(ServiceUnavailable):
    code = "storage_unavailable"
    default_message = "Track storage is unavailable; nothing was stored."


class CorruptObject(Exception):
    """Bytes read or written do not match the size or digest they must have."""


class S3NotConfigured(ServiceUnavailable):
    """Asked of S3 while the settings it needs are missing: which ones is
    said up front, before any row is touched."""

    code = "s3_not_configured"
    default_message = "S3 is not configured."


class MultipartRefused(DomainError):
    """The bucket refused a client's multipart upload as sent: a part missing
    or too small, parts out of order, or the upload no longer open."""

    code = "multipart_refused"
    default_message = "The bucket refused the parts of this upload."

    def __init__(self, s3_code: str) -> None:
        super().__init__(
            f"The bucket refused the parts of this upload ({s3_code}).",
            details={"s3_code": s3_code},
        )
