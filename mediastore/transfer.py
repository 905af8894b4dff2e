"""The native transfer engine: bulk copies to and from S3 through obstore.

Copies of many files (`migrate_storage`, HLS package publishing, audits)
go through obstore (Apache Arrow's Rust `object_store`), not boto3: boto3
spends about 2.4 ms of GIL-bound CPU per small PUT + HEAD, obstore a
fraction of that outside the GIL (`docs/BENCHMARKS.md`, section 3).

Integrity without a HEAD: object_store cannot send a per-request
Content-MD5, so every PUT's answer is checked instead. Its ETag is the
server's MD5 of the body it received (single part) or of the parts' MD5s
(multipart, parts of `PART_SIZE`), and we compare it with the digests we
computed while reading the file. A body changed on the way, or a server
that stored something else, fails the check: the object is deleted and
the write raises `StorageUnavailable`. Where the server also verifies
checksums (`AWS_S3_CHECKSUM_ALGORITHM=sha256`), object_store sends
`x-amz-checksum-sha256` with every PUT and part as well.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import obstore
from obstore.exceptions import BaseError
from obstore.store import S3Store

from mediastore.config import S3Settings, obstore_options
from mediastore.digests import PART_SIZE, Digests, etag_value, etag_verifies
from mediastore.errors import StorageUnavailable
from mediastore.files import ListedObject, ObjectInfo
from veza import metrics

logger = logging.getLogger(__name__)

# Bound once: .labels() takes a lock on every call.
_PUT_OK = metrics.STORAGE_OPERATIONS.labels("s3", "put", "ok")
_PUT_ERROR = metrics.STORAGE_OPERATIONS.labels("s3", "put", "error")
# Entries per ListObjectsV2 page (S3's maximum).
LIST_PAGE = 1000


def s3_transfer() -> S3Transfer:
    """The engine for the current settings, one per process (and settings)."""
    return transfer_for(S3Settings.from_settings())


@functools.lru_cache(maxsize=4)
def transfer_for(s3: S3Settings) -> S3Transfer:
    return S3Transfer(s3)


class S3Transfer:
    """One obstore client, shared by every thread."""

    def __init__(self, s3: S3Settings) -> None:
        self.store = S3Store(**obstore_options(s3))
        self.multipart_threshold = s3.multipart_threshold

    def _fail(self, operation: str, key: str, exc: Exception) -> StorageUnavailable:
        metrics.STORAGE_OPERATIONS.labels("s3", operation, "error").inc()
        # object_store's errors carry a page of "Debug source" after their
        # first line; one line per failure keeps an outage's log readable.
        reason = str(exc).split("\n", 1)[0]
        logger.warning("s3 %s of %s failed: %s", operation, key, reason)
        return StorageUnavailable(details={"backend": "s3"})

    def put(
        self,
        key: str,
        body: bytes | Path,
        digests: Digests,
        *,
        content_type: str,
        cache_control: str | None = None,
    ) -> str:
        """Store `body` under `key`; returns the ETag, verified against `digests`.

        `digests` must carry part MD5s of `PART_SIZE` when the body is at
        least `multipart_threshold` bytes (see `part_size_for`).
        """
        attributes: dict[str, str] = {
            "Content-Type": content_type,
            "sha256": digests.sha256,
        }
        if cache_control:
            attributes["Cache-Control"] = cache_control
        multipart = digests.size >= self.multipart_threshold
        try:
            result = obstore.put(
                self.store,
                key,
                body,
                attributes=attributes,
                use_multipart=multipart,
                chunk_size=PART_SIZE,
                max_concurrency=4,
            )
        except (BaseError, OSError) as exc:
            _PUT_ERROR.inc()
            raise self._fail("put", key, exc) from exc
        etag = etag_value(result["e_tag"])
        if not etag_verifies(etag, digests):
            # Never leave an object that does not match what the row will say.
            self.delete_many([key])
            _PUT_ERROR.inc()
            logger.warning(
                "s3 put of %s did not verify: ETag %s, our MD5 %s",
                key,
                etag,
                digests.md5_hex,
            )
            raise StorageUnavailable(details={"backend": "s3"})
        _PUT_OK.inc()
        return etag

    def part_size_for(self, size: int) -> int | None:
        """The part size `put` will use for a body of `size` bytes, if any."""
        return PART_SIZE if size >= self.multipart_threshold else None

    def head(self, key: str) -> ObjectInfo | None:
        try:
            meta = obstore.head(self.store, key)
        except FileNotFoundError:
            return None
        except (BaseError, OSError) as exc:
            raise self._fail("head", key, exc) from exc
        return ObjectInfo(
            size=int(meta["size"]), sha256=None, etag=etag_value(meta["e_tag"])
        )

    def get(self, key: str) -> tuple[Iterator[bytes], dict[str, Any]] | None:
        """The object's bytes as a stream, and its attributes (user metadata
        such as `sha256` included); None when there is no such object."""
        try:
            result = obstore.get(self.store, key)
        except FileNotFoundError:
            return None
        except (BaseError, OSError) as exc:
            raise self._fail("get", key, exc) from exc
        attributes = {k.lower(): v for k, v in result.attributes.items()}
        attributes["etag"] = etag_value(result.meta["e_tag"])

        def chunks() -> Iterator[bytes]:
            try:
                for chunk in result.stream(min_chunk_size=1024 * 1024):
                    yield bytes(chunk)
            except (BaseError, OSError) as exc:
                raise self._fail("get", key, exc) from exc

        return chunks(), attributes

    def list(self, prefix: str, *, offset: str | None = None) -> Iterator[ListedObject]:
        """Every object under `prefix` (a path prefix ending in "/"), in key
        order, with size and ETag, a page at a time."""
        try:
            pages = obstore.list(
                self.store, prefix.rstrip("/"), offset=offset, chunk_size=LIST_PAGE
            )
            for page in pages:
                for meta in page:
                    yield ListedObject(
                        key=meta["path"],
                        size=int(meta["size"]),
                        etag=etag_value(meta["e_tag"]),
                    )
        except (BaseError, OSError) as exc:
            raise self._fail("list", prefix, exc) from exc

    def delete_many(self, keys: Sequence[str]) -> None:
        """Delete objects (S3 DeleteObjects, 1,000 per request); missing is fine."""
        if not keys:
            return
        try:
            obstore.delete(self.store, list(keys))
        except (BaseError, OSError) as exc:
            raise self._fail("delete", keys[0], exc) from exc
        metrics.STORAGE_OPERATIONS.labels("s3", "delete", "ok").inc(len(keys))
