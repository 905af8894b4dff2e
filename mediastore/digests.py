"""Digests of a file in one read, and what an S3 ETag proves about them."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

CHUNK_SIZE = 1024 * 1024
MiB = 1024 * 1024
# Parts of multipart uploads made by the transfer engine; also the size our
# ETag check of a multipart object assumes for the objects it wrote.
PART_SIZE = 16 * MiB
# Part sizes a multipart ETag may have been made with: ours (mediastore.config
# PART_SIZE), boto3's upload path in this project, s3transfer's and
# object_store's defaults. Used only to check ETags of objects we did not
# just write (the local purge).
KNOWN_PART_SIZES = (PART_SIZE, 8 * MiB, 5 * MiB)


@dataclass(frozen=True)
class Digests:
    """Size, SHA-256 and MD5 of some bytes; per-part MD5s when asked for."""

    size: int
    sha256: str  # hex
    md5: bytes
    part_size: int | None = None
    part_md5s: tuple[bytes, ...] = ()

    @property
    def md5_hex(self) -> str:
        return self.md5.hex()

    @property
    def md5_base64(self) -> str:
        return base64.b64encode(self.md5).decode()


class Hasher:
    """SHA-256, MD5 and optionally per-part MD5s, fed chunk by chunk."""

    def __init__(self, part_size: int | None = None) -> None:
        self.sha256 = hashlib.sha256()
        self.md5 = hashlib.md5()  # noqa: S324  (S3's digest, not security)
        self.size = 0
        self.part_size = part_size
        self._parts: list[bytes] = []
        self._part = hashlib.md5()  # noqa: S324
        self._part_fill = 0

    def update(self, chunk: bytes | memoryview) -> None:
        self.sha256.update(chunk)
        self.md5.update(chunk)
        self.size += len(chunk)
        if self.part_size is None:
            return
        view = memoryview(chunk)
        while view:
            take = min(len(view), self.part_size - self._part_fill)
            self._part.update(view[:take])
            self._part_fill += take
            view = view[take:]
            if self._part_fill == self.part_size:
                self._parts.append(self._part.digest())
                self._part = hashlib.md5()  # noqa: S324
                self._part_fill = 0

    def digests(self) -> Digests:
        parts = list(self._parts)
        if self.part_size is not None and (self._part_fill or not parts):
            parts.append(self._part.digest())
        return Digests(
            size=self.size,
            sha256=self.sha256.hexdigest(),
            md5=self.md5.digest(),
            part_size=self.part_size,
            part_md5s=tuple(parts),
        )


def digests_of_bytes(data: bytes, *, part_size: int | None = None) -> Digests:
    hasher = Hasher(part_size)
    hasher.update(data)
    return hasher.digests()


def digests_of_file(path: Path, *, part_size: int | None = None) -> Digests:
    """Digests of a file, read once."""
    hasher = Hasher(part_size)
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_SIZE):
            hasher.update(chunk)
    return hasher.digests()


def hash_file(path: Path) -> tuple[int, str, str]:
    """Size, SHA-256 (hex) and MD5 (base64) of a file, in one read."""
    digests = digests_of_file(path)
    return digests.size, digests.sha256, digests.md5_base64


def multipart_etag(part_md5s: Iterable[bytes]) -> str:
    """The ETag S3 gives a multipart upload: MD5 of the parts' MD5s, "-N"."""
    parts = list(part_md5s)
    joined = hashlib.md5(b"".join(parts)).hexdigest()  # noqa: S324
    return f"{joined}-{len(parts)}"


def etag_value(etag: str | None) -> str:
    """An ETag without its quotes (listings and PUT answers differ)."""
    return (etag or "").strip().strip('"').lower()


def etag_verifies(etag: str | None, digests: Digests) -> bool:
    """Whether the server's ETag proves it holds exactly these bytes.

    A single-part ETag is the MD5 of the body the server received; a
    multipart one is the MD5 of the parts' MD5s (checked when the parts
    were hashed), or, on some servers (rclone), the MD5 of the whole.
    """
    value = etag_value(etag)
    if value == digests.md5_hex:
        return True
    if "-" in value and digests.part_md5s:
        return value == multipart_etag(digests.part_md5s)
    return False


def etag_verifies_file(etag: str | None, path: Path) -> bool:
    """`etag_verifies` for a local file when the part size is not known:
    tries every part size that gives the ETag's part count (the common ones,
    and whole MiB), hashing the file once for all of them."""
    value = etag_value(etag)
    if "-" not in value:
        return value == digests_of_file(path).md5_hex
    count_text = value.rpartition("-")[2]
    if not count_text.isdigit() or int(count_text) < 1:
        return False
    sizes = _part_sizes(path.stat().st_size, int(count_text))
    hashers = [Hasher(size) for size in sizes]
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_SIZE):
            for hasher in hashers:
                hasher.update(chunk)
    return any(etag_verifies(value, h.digests()) for h in hashers)


def _part_sizes(size: int, count: int) -> list[int]:
    """Part sizes that cut `size` bytes into exactly `count` parts: the
    known defaults, and whole MiB (as clients grow parts to stay under
    10,000), at most a few."""

    def fits(part: int) -> bool:
        return part > 0 and -(-size // part) == count

    found = [p for p in KNOWN_PART_SIZES if fits(p)]
    if count == 1:
        return found or [max(size, 1)]
    smallest = -(-size // count)
    largest = (size - 1) // (count - 1)
    start = -(-smallest // MiB)
    found += [m * MiB for m in range(start, start + 8) if m * MiB <= largest]
    return list(dict.fromkeys(p for p in found if fits(p)))
