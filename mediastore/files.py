"""What storage reads and writes: a staged file with its digests, an object's facts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.core.files import File

from mediastore.digests import Digests, digests_of_bytes, digests_of_file

# The storage backends, by the name rows record ("local", "s3").
BACKENDS = ("local", "s3")
# Files up to this size are read into memory once for hashing and copying.
IN_MEMORY_COPY_BYTES = 8 * 1024 * 1024


def read_for_copy(
    path: Path, *, part_size_for: Callable[[int], int | None]
) -> tuple[Digests, bytes | None]:
    """A file's digests for a bulk copy, read once (with the part MD5s the
    copy will need); small files come back with their bytes too, so the
    copy does not read them again."""
    size = path.stat().st_size
    part_size = part_size_for(size)
    if size > IN_MEMORY_COPY_BYTES:
        return digests_of_file(path, part_size=part_size), None
    data = path.read_bytes()
    return digests_of_bytes(data, part_size=part_size), data


@dataclass(frozen=True)
class BucketCopy:
    """An object in the bucket, as it was read: its key and that read's ETag
    (a copy is made only if the object is still the one read)."""

    key: str
    etag: str


@dataclass(frozen=True)
class Downloaded:
    """What a download wrote: its SHA-256 (hex) and the object's ETag."""

    sha256: str
    etag: str


class SourceFile(File):  # type: ignore[type-arg]
    """A local file to store, with the digests computed while it was received.

    Storage backends (`mediastore.backends`) take it through Django's
    `Storage.save()` or their `put()`; a plain `File` works too, its digests
    are then computed on the way.
    """

    def __init__(
        self,
        path: Path,
        *,
        size: int,
        sha256: str,
        content_type: str,
        md5_base64: str | None = None,
        cache_control: str | None = None,
        movable: bool = False,
        bucket_copy: BucketCopy | None = None,
    ) -> None:
        super().__init__(None, name=str(path))
        self.path = path
        self.size = size
        self.sha256 = sha256
        self.md5_base64 = md5_base64
        self.content_type = content_type
        # Stored with the object on S3, so a CDN pulling from the bucket keeps it.
        self.cache_control = cache_control
        # A staged file nobody reads after it is stored: local storage may
        # move it into place (a rename) instead of copying every byte.
        self.movable = movable
        # These very bytes in the S3 bucket (a client sent them there): S3
        # storage copies them server-side instead of sending the file.
        self.bucket_copy = bucket_copy

    @classmethod
    def from_digests(
        cls,
        path: Path,
        digests: Digests,
        *,
        content_type: str,
        cache_control: str | None = None,
    ) -> SourceFile:
        return cls(
            path,
            size=digests.size,
            sha256=digests.sha256,
            md5_base64=digests.md5_base64,
            content_type=content_type,
            cache_control=cache_control,
        )

    @classmethod
    def of(
        cls, path: Path, *, content_type: str, cache_control: str | None = None
    ) -> SourceFile:
        """A file whose digests are computed now, in one read."""
        return cls.from_digests(
            path,
            digests_of_file(path),
            content_type=content_type,
            cache_control=cache_control,
        )


@dataclass(frozen=True)
class ObjectInfo:
    """What a HEAD (or a stat) says of one stored object."""

    size: int
    sha256: str | None  # the x-amz-meta-sha256 we wrote, when there is one
    etag: str = ""


@dataclass(frozen=True)
class ListedObject:
    """One entry of a listing: name, size and the server's ETag ("" locally)."""

    key: str
    size: int
    etag: str = ""
