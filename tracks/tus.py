"""The tus 1.0.0 headers: what the server announces and how requests are read."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tracks.errors import InvalidUploadHeader

TUS_VERSION = "1.0.0"
EXTENSIONS = "creation,creation-with-upload,termination,checksum,expiration"
CHUNK_CONTENT_TYPE = "application/offset+octet-stream"
CHECKSUM_ALGORITHMS: dict[str, Callable[[], Any]] = {
    "sha1": hashlib.sha1,
    "md5": hashlib.md5,
    "sha256": hashlib.sha256,
}

_DIGITS = re.compile(r"[0-9]{1,19}")
_KEY = re.compile(r"[^\s,]+")


def parse_size(value: str | None, *, header: str) -> int:
    """A non-negative byte count (Upload-Length, Upload-Offset)."""
    if value is None or not _DIGITS.fullmatch(value):
        raise InvalidUploadHeader(
            f"{header} must be a whole number of bytes.", details={"header": header}
        )
    return int(value)


def parse_metadata(value: str | None) -> dict[str, str]:
    """Upload-Metadata: `key base64,key base64,key` (a bare key is empty)."""
    pairs: dict[str, str] = {}
    if not value:
        return pairs
    for item in value.split(","):
        parts = item.strip().split(" ")
        if not parts[0] or not _KEY.fullmatch(parts[0]) or len(parts) > 2:
            raise _bad_metadata()
        raw = b""
        if len(parts) == 2:
            try:
                raw = base64.b64decode(parts[1], validate=True)
            except binascii.Error:
                raise _bad_metadata() from None
        try:
            pairs[parts[0]] = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _bad_metadata() from None
    return pairs


def _bad_metadata() -> InvalidUploadHeader:
    return InvalidUploadHeader(
        "Upload-Metadata is comma-separated `key base64-value` pairs.",
        details={"header": "Upload-Metadata"},
    )


@dataclass(frozen=True)
class Checksum:
    algorithm: str
    digest: bytes

    def new(self) -> Any:
        return CHECKSUM_ALGORITHMS[self.algorithm]()


def parse_checksum(value: str | None) -> Checksum | None:
    """Upload-Checksum: `<algorithm> <base64 digest>`."""
    if value is None:
        return None
    algorithm, _, encoded = value.strip().partition(" ")
    if algorithm not in CHECKSUM_ALGORITHMS:
        raise InvalidUploadHeader(
            f"Upload-Checksum algorithm is one of {', '.join(CHECKSUM_ALGORITHMS)}.",
            code="checksum_algorithm_unsupported",
            details={"header": "Upload-Checksum"},
        )
    try:
        digest = base64.b64decode(encoded, validate=True)
    except binascii.Error:
        digest = b""
    if len(digest) != CHECKSUM_ALGORITHMS[algorithm]().digest_size:
        raise InvalidUploadHeader(
            "Upload-Checksum is `<algorithm> <base64 digest>`.",
            details={"header": "Upload-Checksum"},
        )
    return Checksum(algorithm, digest)
