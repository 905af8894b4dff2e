"""Errors of media storage, each with a stable code where the API shows it."""

from veza.errors import ServiceUnavailable


class StorageUnavailable(ServiceUnavailable):
    code = "storage_unavailable"
    default_message = "Track storage is unavailable; nothing was stored."


class CorruptObject(Exception):
    """Bytes read or written do not match the size or digest they must have."""
