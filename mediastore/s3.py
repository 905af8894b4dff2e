"""The S3 media storage: django-storages' S3Storage with the project's guarantees.

A module of its own because it loads boto3 (a fifth of a second): nothing
imports it until `STORAGES["media_s3"]` is first built, so processes that
never touch S3 (a no-op `migrate_storage`) start faster.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import threading
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from botocore.exceptions import BotoCoreError, ClientError
from storages.backends.s3 import S3Storage

from mediastore.backends import MediaStorage
from mediastore.config import S3Settings, django_storages_options
from mediastore.digests import CHUNK_SIZE, Digests, digests_of_file
from mediastore.errors import MultipartRefused, StorageUnavailable
from mediastore.files import Downloaded, ListedObject, ObjectInfo, SourceFile
from mediastore.transfer import S3Transfer, transfer_for
from veza import metrics

logger = logging.getLogger(__name__)

# Tries of one download whose connection drops mid-body.
DOWNLOAD_ATTEMPTS = 4
# The largest object one CopyObject copies; a bigger one would take a
# multipart copy (UploadPartCopy, which not every S3 server has), so it is
# sent again from the local file instead.
COPY_OBJECT_MAX_BYTES = 5 * 1024**3


class S3MediaStorage(MediaStorage, S3Storage):
    """The bucket of `AWS_STORAGE_BUCKET_NAME`, through django-storages.

    One boto3 client serves every thread (django-storages builds one per
    thread, most of a second each); presigned URLs are signed by a second
    instance for the public endpoint, since the host is part of a SigV4
    signature.
    """

    backend = "s3"

    def __init__(self, **options: Any) -> None:
        self.s3 = S3Settings.from_settings()
        super().__init__(
            **{
                **django_storages_options(self.s3, endpoint_url=self.s3.endpoint_url),
                **options,
            }
        )
        self._shared_connection: Any = None
        self._connection_lock = threading.Lock()

    @property
    def connection(self) -> Any:
        if self._shared_connection is None:
            with self._connection_lock:
                if self._shared_connection is None:
                    self._shared_connection = S3Storage.connection.fget(self)
                    self._shared_connection.meta.client.meta.events.register(
                        "before-parameter-build.s3.UploadPart", _part_content_md5
                    )
        return self._shared_connection

    @property
    def client(self) -> Any:
        return self.connection.meta.client

    @property
    def transfer(self) -> S3Transfer:
        """The native engine for bulk copies, built from the same settings."""
        return transfer_for(self.s3)

    @cached_property
    def _public(self) -> S3MediaStorage:
        public = self.s3.public_endpoint_url
        if not public or public == self.s3.endpoint_url:
            return self
        return S3MediaStorage(endpoint_url=public)

    def _fail(self, operation: str, key: str, exc: Exception) -> StorageUnavailable:
        metrics.STORAGE_OPERATIONS.labels(self.backend, operation, "error").inc()
        logger.warning("s3 %s of %s failed: %s", operation, key, exc)
        return StorageUnavailable(details={"backend": self.backend})

    def put(self, key: str, source: SourceFile) -> str:
        extra: dict[str, Any] = {
            "ContentType": source.content_type,
            "Metadata": {"sha256": source.sha256},
        }
        if source.cache_control:
            extra["CacheControl"] = source.cache_control
        try:
            copy = source.bucket_copy
            if copy is not None and source.size <= COPY_OBJECT_MAX_BYTES:
                self.client.copy_object(
                    Bucket=self.bucket_name,
                    Key=key,
                    CopySource={"Bucket": self.bucket_name, "Key": copy.key},
                    # Only the object that was read and hashed.
                    CopySourceIfMatch=copy.etag,
                    MetadataDirective="REPLACE",
                    **extra,
                )
            elif source.size < self.s3.multipart_threshold:
                md5 = source.md5_base64 or digests_of_file(source.path).md5_base64
                with source.path.open("rb") as body:
                    self.client.put_object(
                        Bucket=self.bucket_name,
                        Key=key,
                        Body=body,
                        ContentLength=source.size,
                        ContentMD5=md5,
                        **extra,
                    )
            else:
                self._upload_multipart(key, source.path, extra)
        except (BotoCoreError, ClientError, OSError) as exc:
            raise self._fail("put", key, exc) from exc
        try:
            info = self.stat(key)
        except StorageUnavailable:
            # Unchecked, it must not stay: the row will not say it exists.
            with contextlib.suppress(StorageUnavailable):
                self.remove(key)
            raise
        if info is None or info.size != source.size or info.sha256 != source.sha256:
            # Never leave an object that does not match what the row will say.
            self.remove(key)
            raise self._fail("put", key, ValueError(f"verification failed: {info}"))
        metrics.STORAGE_OPERATIONS.labels(self.backend, "put", "ok").inc()
        return info.etag

    def put_file(
        self,
        key: str,
        path: Path,
        digests: Digests,
        *,
        content_type: str,
        cache_control: str | None = None,
        data: bytes | None = None,
    ) -> str:
        return self.transfer.put(
            key,
            path if data is None else data,
            digests,
            content_type=content_type,
            cache_control=cache_control,
        )

    def part_size_for(self, size: int) -> int | None:
        return self.transfer.part_size_for(size)

    def remove_many(self, keys: list[str]) -> None:
        self.transfer.delete_many(keys)

    def _upload_multipart(self, key: str, path: Path, extra: dict[str, Any]) -> None:
        from boto3.exceptions import S3UploadFailedError
        from boto3.s3.transfer import TransferConfig

        config = TransferConfig(
            multipart_threshold=self.s3.multipart_threshold,
            multipart_chunksize=16 * 1024 * 1024,
            max_concurrency=4,
            preferred_transfer_client="classic",  # CRT ignores endpoint_url
        )
        # By file name, so s3transfer reads each part from disk when it sends
        # it; from a file object it buffers up to max_io_queue parts in memory.
        try:
            self.client.upload_file(
                str(path), self.bucket_name, key, ExtraArgs=extra, Config=config
            )
        except S3UploadFailedError as exc:
            # boto3 wraps a part's ClientError in its own exception type.
            raise self._fail("put", key, exc) from exc

    def remove(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket_name, Key=key)
        except (BotoCoreError, ClientError) as exc:
            raise self._fail("delete", key, exc) from exc
        metrics.STORAGE_OPERATIONS.labels(self.backend, "delete", "ok").inc()

    def delete(self, name: str) -> None:
        self.remove(name)

    def stat(self, key: str) -> ObjectInfo | None:
        try:
            head = self.client.head_object(Bucket=self.bucket_name, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in (
                "404",
                "NoSuchKey",
                "NotFound",
            ):
                return None
            raise self._fail("head", key, exc) from exc
        except BotoCoreError as exc:
            raise self._fail("head", key, exc) from exc
        # Some servers (rclone) canonicalise metadata names to "Sha256".
        metadata = {k.lower(): v for k, v in head.get("Metadata", {}).items()}
        return ObjectInfo(
            size=int(head["ContentLength"]),
            sha256=metadata.get("sha256"),
            etag=str(head.get("ETag", "")).strip('"'),
        )

    def read(self, key: str, start: int, end: int) -> Iterator[bytes]:
        try:
            obj = self.client.get_object(
                Bucket=self.bucket_name, Key=key, Range=f"bytes={start}-{end}"
            )
        except (BotoCoreError, ClientError) as exc:
            raise self._fail("get", key, exc) from exc
        yield from obj["Body"].iter_chunks(CHUNK_SIZE)

    def presigned_url(
        self, key: str, *, expires_in: int, content_type: str, disposition: str | None
    ) -> str:
        parameters = {"ResponseContentType": content_type}
        if disposition:
            parameters["ResponseContentDisposition"] = disposition
        return str(self._public.url(key, parameters=parameters, expire=expires_in))

    def keys(self, prefix: str) -> Iterator[ListedObject]:
        return self.transfer.list(prefix)

    # Multipart uploads that clients send straight to the bucket: the server
    # opens, signs, lists, completes and aborts; the bytes never reach it.

    def _call(self, operation: str, key: str, method: str, **params: Any) -> Any:
        try:
            return getattr(self.client, method)(
                Bucket=self.bucket_name, Key=key, **params
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in (
                "NoSuchUpload",
                "InvalidPart",
                "InvalidPartOrder",
                "EntityTooSmall",
            ):
                raise MultipartRefused(code) from exc
            raise self._fail(operation, key, exc) from exc
        except BotoCoreError as exc:
            raise self._fail(operation, key, exc) from exc

    def multipart_create(self, key: str, *, content_type: str) -> str:
        answer = self._call(
            "multipart", key, "create_multipart_upload", ContentType=content_type
        )
        return str(answer["UploadId"])

    def multipart_part_url(
        self, key: str, *, upload_id: str, part_number: int, expires_in: int
    ) -> str:
        """A presigned UploadPart, signed for the host clients reach."""
        return str(
            self._public.client.generate_presigned_url(
                "upload_part",
                Params={
                    "Bucket": self.bucket_name,
                    "Key": key,
                    "UploadId": upload_id,
                    "PartNumber": part_number,
                },
                ExpiresIn=expires_in,
            )
        )

    def browser_prefix(self) -> str:
        """Where the URLs clients send parts to start (scheme, host and the
        bucket's path if the bucket is in the path): a page's
        Content-Security-Policy lets it connect there, to this bucket only."""
        # Signed locally, no request: the host may be the endpoint or the
        # bucket's own virtual host, as the addressing style makes it.
        probe = "uploads/prefix"
        url = urlsplit(
            self.multipart_part_url(probe, upload_id="x", part_number=1, expires_in=60)
        )
        return f"{url.scheme}://{url.netloc}{url.path.removesuffix(probe)}"

    def multipart_parts(self, key: str, *, upload_id: str) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = []
        marker = 0
        while True:
            page = self._call(
                "multipart",
                key,
                "list_parts",
                UploadId=upload_id,
                PartNumberMarker=marker,
            )
            parts += [
                {"PartNumber": p["PartNumber"], "Size": p["Size"], "ETag": p["ETag"]}
                for p in page.get("Parts", [])
            ]
            if not page.get("IsTruncated"):
                return parts
            marker = page["NextPartNumberMarker"]

    def multipart_complete(
        self, key: str, *, upload_id: str, parts: list[dict[str, Any]]
    ) -> None:
        self._call(
            "multipart",
            key,
            "complete_multipart_upload",
            UploadId=upload_id,
            MultipartUpload={"Parts": parts},
        )

    def multipart_abort(self, key: str, *, upload_id: str) -> None:
        # Already completed or aborted: nothing left open either way.
        with contextlib.suppress(MultipartRefused):
            self._call("multipart", key, "abort_multipart_upload", UploadId=upload_id)

    def download(self, key: str, path: Path) -> Downloaded:
        """Write the object to `path`, hashing it on the way (one pass over
        the bytes). A connection lost mid-body goes on from the byte it
        stopped at, from the same object (If-Match its ETag)."""
        sha256 = hashlib.sha256()
        written, etag = 0, ""
        with path.open("wb") as file:
            for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
                resume = {"Range": f"bytes={written}-", "IfMatch": etag} if etag else {}
                try:
                    answer = self.client.get_object(
                        Bucket=self.bucket_name, Key=key, **resume
                    )
                    etag = etag or str(answer["ETag"])
                    with contextlib.closing(answer["Body"]) as body:
                        for chunk in body.iter_chunks(CHUNK_SIZE):
                            sha256.update(chunk)
                            file.write(chunk)
                            written += len(chunk)
                    return Downloaded(sha256=sha256.hexdigest(), etag=etag)
                except ClientError as exc:  # an answer: asking again changes nothing
                    raise self._fail("get", key, exc) from exc
                except BotoCoreError as exc:
                    if attempt == DOWNLOAD_ATTEMPTS:
                        raise self._fail("get", key, exc) from exc
                    logger.info(
                        "s3 get of %s cut at byte %d (%s); resuming", key, written, exc
                    )
        raise AssertionError("unreachable")

    def check(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket_name)
        except (BotoCoreError, ClientError) as exc:
            raise StorageUnavailable(
                f"S3 bucket {self.bucket_name!r} does not answer: {exc}"
            ) from exc


def _part_content_md5(params: dict[str, Any], **kwargs: Any) -> None:
    """Give each multipart part a Content-MD5, as single PUTs have, so the
    server checks every body we send (payloads are not signed by default)."""
    body = params.get("Body")
    if body is None or "ContentMD5" in params:
        return
    md5 = hashlib.md5()  # noqa: S324  (Content-MD5 for S3, not security)
    if isinstance(body, bytes | bytearray):
        md5.update(body)
    else:
        start = body.tell()
        while chunk := body.read(CHUNK_SIZE):
            md5.update(chunk)
        body.seek(start)
    params["ContentMD5"] = base64.b64encode(md5.digest()).decode()
