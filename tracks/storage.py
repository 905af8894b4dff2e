"""Track bytes on local disk or S3/MinIO behind one small interface."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings

from tracks.errors import StorageUnavailable
from veza import metrics

logger = logging.getLogger(__name__)

CHUNK_SIZE = 1024 * 1024


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    sha256: str | None


@dataclass(frozen=True)
class SourceFile:
    """A staged file with the digests computed while it was received."""

    path: Path
    size: int
    sha256: str
    md5_base64: str | None  # computed on demand when None
    content_type: str
    # Stored with the object on S3, so a CDN pulling from the bucket keeps it.
    cache_control: str | None = None


class CorruptObject(Exception):
    """Bytes read back do not match the size or SHA-256 the row records."""


def hash_file(path: Path) -> tuple[int, str, str]:
    """Size, SHA-256 (hex) and MD5 (base64) of a file, in one read."""
    sha256 = hashlib.sha256()
    md5 = hashlib.md5()  # noqa: S324  (Content-MD5 for S3, not security)
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_SIZE):
            size += len(chunk)
            sha256.update(chunk)
            md5.update(chunk)
    return size, sha256.hexdigest(), base64.b64encode(md5.digest()).decode()


class TrackStorage:
    """What every backend offers. Names are the same on both backends."""

    name: str

    def put(self, key: str, source: SourceFile) -> None:
        """Store `source` under `key` durably, verified, or raise."""
        raise NotImplementedError

    def delete(self, key: str) -> None:
        raise NotImplementedError

    def stat(self, key: str) -> ObjectInfo | None:
        raise NotImplementedError

    def read(self, key: str, start: int, end: int) -> Iterator[bytes]:
        """Yield bytes `start` to `end` inclusive."""
        raise NotImplementedError

    def presigned_url(
        self, key: str, *, expires_in: int, content_type: str, disposition: str | None
    ) -> str | None:
        """A URL that serves the object without the origin, if there is one."""
        return None

    def local_path(self, key: str) -> Path | None:
        return None

    def check(self) -> None:
        """Raise StorageUnavailable unless the backend answers."""
        raise NotImplementedError

    def keys(self, prefix: str) -> Iterator[tuple[str, int]]:
        """Every object name under `prefix`, with its size."""
        raise NotImplementedError


def _safe_relative(key: str) -> str:
    # Keys are made by the services, but a key is joined to a directory here,
    # so refuse anything that could leave it.
    parts = key.split("/")
    if key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"unsafe storage key: {key!r}")
    return key


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalStorage(TrackStorage):
    name = "local"

    def __init__(self, root: Path) -> None:
        self.root = root

    def local_path(self, key: str) -> Path:
        return self.root / _safe_relative(key)

    def put(self, key: str, source: SourceFile) -> None:
        target = self.local_path(key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            # Write beside the target, fsync, then rename: a reader sees the
            # whole file or none, even after a crash.
            fd, tmp_name = tempfile.mkstemp(prefix=".incoming-", dir=target.parent)
            tmp = Path(tmp_name)
            try:
                with os.fdopen(fd, "wb") as out, source.path.open("rb") as src:
                    shutil.copyfileobj(src, out, CHUNK_SIZE)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, target)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            _fsync_dir(target.parent)
        except OSError as exc:
            metrics.STORAGE_OPERATIONS.labels(self.name, "put", "error").inc()
            logger.warning("local put of %s failed: %s", key, exc)
            raise StorageUnavailable(details={"backend": self.name}) from exc
        metrics.STORAGE_OPERATIONS.labels(self.name, "put", "ok").inc()

    def delete(self, key: str) -> None:
        path = self.local_path(key)
        path.unlink(missing_ok=True)
        metrics.STORAGE_OPERATIONS.labels(self.name, "delete", "ok").inc()
        # Remove the track's directory when it is empty; others may share it.
        with contextlib.suppress(OSError):
            path.parent.rmdir()

    def stat(self, key: str) -> ObjectInfo | None:
        try:
            return ObjectInfo(size=self.local_path(key).stat().st_size, sha256=None)
        except FileNotFoundError:
            return None

    def read(self, key: str, start: int, end: int) -> Iterator[bytes]:
        with self.local_path(key).open("rb") as f:
            f.seek(start)
            remaining = end - start + 1
            while remaining > 0:
                chunk = f.read(min(CHUNK_SIZE, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                yield chunk

    def write_verified(
        self, key: str, chunks: Iterator[bytes], *, size: int, sha256: str
    ) -> None:
        """Write `chunks` to `key` only if they hash to `sha256`, atomically."""
        target = self.local_path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=".incoming-", dir=target.parent)
        tmp = Path(tmp_name)
        try:
            digest = hashlib.sha256()
            written = 0
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    out.write(chunk)
                    digest.update(chunk)
                    written += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            if written != size or digest.hexdigest() != sha256:
                raise CorruptObject(
                    f"{key}: got {written} bytes, sha256 {digest.hexdigest()}"
                )
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(target.parent)
        metrics.STORAGE_OPERATIONS.labels(self.name, "put", "ok").inc()

    def keys(self, prefix: str) -> Iterator[tuple[str, int]]:
        base = self.root / prefix
        if not base.exists():
            return
        for path in base.rglob("*"):
            if path.is_file() and not path.name.startswith(".incoming-"):
                yield path.relative_to(self.root).as_posix(), path.stat().st_size

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.root):
                pass
        except OSError as exc:
            raise StorageUnavailable(
                f"MEDIA_ROOT {self.root} is not writable: {exc}"
            ) from exc


def _client_config() -> Config:
    return Config(
        # A fixed string, which also names us in the server's access logs:
        # botocore's own is rebuilt twice per request, a tenth of its CPU.
        user_agent=f"veza botocore/{botocore.__version__}",
        signature_version="s3v4",
        s3={
            "addressing_style": settings.AWS_S3_ADDRESSING_STYLE,
            # Explicit, so it holds on http and https alike: left unset,
            # botocore signs every body over http and hashes it once more.
            "payload_signing_enabled": settings.AWS_S3_SIGN_PAYLOAD,
        },
        retries={"mode": "standard", "max_attempts": settings.AWS_S3_MAX_ATTEMPTS},
        max_pool_connections=settings.AWS_S3_MAX_POOL_CONNECTIONS,
        connect_timeout=5,
        read_timeout=60,
        request_checksum_calculation=settings.AWS_S3_CHECKSUM_MODE,
        response_checksum_validation=settings.AWS_S3_CHECKSUM_MODE,
    )


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


def _s3_client(endpoint_url: str | None) -> Any:
    from storages.backends.s3 import S3Storage as DjangoS3Storage

    # django-storages builds and configures the boto3 session; raw client
    # calls are needed for Content-MD5, metadata and HEAD verification.
    storage = DjangoS3Storage(
        bucket_name=settings.AWS_STORAGE_BUCKET_NAME,
        access_key=settings.AWS_ACCESS_KEY_ID,
        secret_key=settings.AWS_SECRET_ACCESS_KEY,
        endpoint_url=endpoint_url,
        region_name=settings.AWS_S3_REGION_NAME,
        client_config=_client_config(),
    )
    client = storage.connection.meta.client
    client.meta.events.register(
        "before-parameter-build.s3.UploadPart", _part_content_md5
    )
    return client


class S3Storage(TrackStorage):
    name = "s3"

    def __init__(self) -> None:
        self.bucket = settings.AWS_STORAGE_BUCKET_NAME
        self.client = _s3_client(settings.AWS_S3_ENDPOINT_URL)
        public = settings.AWS_S3_PUBLIC_ENDPOINT_URL or settings.AWS_S3_ENDPOINT_URL
        # The host is part of a SigV4 signature, so presigned URLs are signed
        # by a client that talks to the public endpoint.
        self.public_client = (
            self.client
            if public == settings.AWS_S3_ENDPOINT_URL
            else _s3_client(public)
        )
        self.multipart_threshold = settings.AWS_S3_MULTIPART_THRESHOLD

    def _fail(self, operation: str, key: str, exc: Exception) -> StorageUnavailable:
        metrics.STORAGE_OPERATIONS.labels(self.name, operation, "error").inc()
        logger.warning("s3 %s of %s failed: %s", operation, key, exc)
        return StorageUnavailable(details={"backend": self.name})

    def put(self, key: str, source: SourceFile) -> None:
        extra: dict[str, Any] = {
            "ContentType": source.content_type,
            "Metadata": {"sha256": source.sha256},
        }
        if source.cache_control:
            extra["CacheControl"] = source.cache_control
        try:
            if source.size < self.multipart_threshold:
                md5 = source.md5_base64 or hash_file(source.path)[2]
                with source.path.open("rb") as body:
                    self.client.put_object(
                        Bucket=self.bucket,
                        Key=key,
                        Body=body,
                        ContentLength=source.size,
                        ContentMD5=md5,
                        **extra,
                    )
            else:
                self._upload_multipart(key, source.path, extra)
            info = self.stat(key)
        except (BotoCoreError, ClientError, OSError) as exc:
            raise self._fail("put", key, exc) from exc
        if info is None or info.size != source.size or info.sha256 != source.sha256:
            # Never leave an object that does not match what the row will say.
            self.delete(key)
            raise self._fail("put", key, ValueError(f"verification failed: {info}"))
        metrics.STORAGE_OPERATIONS.labels(self.name, "put", "ok").inc()

    def _upload_multipart(self, key: str, path: Path, extra: dict[str, Any]) -> None:
        from boto3.exceptions import S3UploadFailedError
        from boto3.s3.transfer import TransferConfig

        config = TransferConfig(
            multipart_threshold=self.multipart_threshold,
            multipart_chunksize=16 * 1024 * 1024,
            max_concurrency=4,
            preferred_transfer_client="classic",  # CRT ignores endpoint_url
        )
        # By file name, so s3transfer reads each part from disk when it sends
        # it; from a file object it buffers up to max_io_queue parts in memory.
        try:
            self.client.upload_file(
                str(path), self.bucket, key, ExtraArgs=extra, Config=config
            )
        except S3UploadFailedError as exc:
            # boto3 wraps a part's ClientError in its own exception type.
            raise self._fail("put", key, exc) from exc

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except (BotoCoreError, ClientError) as exc:
            raise self._fail("delete", key, exc) from exc
        metrics.STORAGE_OPERATIONS.labels(self.name, "delete", "ok").inc()

    def stat(self, key: str) -> ObjectInfo | None:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
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
            size=int(head["ContentLength"]), sha256=metadata.get("sha256")
        )

    def read(self, key: str, start: int, end: int) -> Iterator[bytes]:
        try:
            obj = self.client.get_object(
                Bucket=self.bucket, Key=key, Range=f"bytes={start}-{end}"
            )
        except (BotoCoreError, ClientError) as exc:
            raise self._fail("get", key, exc) from exc
        yield from obj["Body"].iter_chunks(CHUNK_SIZE)

    def presigned_url(
        self, key: str, *, expires_in: int, content_type: str, disposition: str | None
    ) -> str:
        params = {
            "Bucket": self.bucket,
            "Key": key,
            "ResponseContentType": content_type,
        }
        if disposition:
            params["ResponseContentDisposition"] = disposition
        return str(
            self.public_client.generate_presigned_url(
                "get_object", Params=params, ExpiresIn=expires_in
            )
        )

    def keys(self, prefix: str) -> Iterator[tuple[str, int]]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                yield obj["Key"], int(obj["Size"])

    def check(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (BotoCoreError, ClientError) as exc:
            raise StorageUnavailable(
                f"S3 bucket {self.bucket!r} does not answer: {exc}"
            ) from exc


_storages: dict[str, TrackStorage] = {}
# Building an S3 client takes most of a second; threads that all miss the
# cache at once must not each build one.
_storages_lock = threading.Lock()


def storage_for(backend: str) -> TrackStorage:
    """The storage of one backend, built once per process."""
    storage = _storages.get(backend)
    if storage is not None:
        return storage
    with _storages_lock:
        if backend not in _storages:
            if backend == "local":
                _storages[backend] = LocalStorage(Path(settings.MEDIA_ROOT))
            elif backend == "s3":
                _storages[backend] = S3Storage()
            else:
                raise ValueError(f"unknown storage backend {backend!r}")
        return _storages[backend]


def storage_reset(**kwargs: Any) -> None:
    """Forget built storages, after settings change (tests, reconfiguration)."""
    with _storages_lock:
        _storages.clear()
