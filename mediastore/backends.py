"""Media storage backends: Django storage classes with the project's guarantees.

Declared in `settings.STORAGES` as `media_local` (a `FileSystemStorage`) and
`media_s3` (a django-storages `S3Storage`). On top of what Django and
django-storages do, both keep the project's rules:

* names are deterministic and the same on both backends (retries rewrite the
  same name, never a renamed one);
* a write is durable and verified before it returns: locally a temporary file
  beside the target, fsynced, then renamed; on S3 a PUT with Content-MD5 and
  the SHA-256 as metadata, then a HEAD check (bulk copies use the native
  engine in `mediastore.transfer`, which checks the PUT's ETag instead);
* every failure of the backend is a `StorageUnavailable` (503, stable code).

The S3 class lives in `mediastore.s3` (it loads boto3).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from django.conf import settings
from django.core.files import File
from django.core.files.storage import FileSystemStorage, storages

from mediastore.digests import (
    CHUNK_SIZE,
    PART_SIZE,
    Digests,
    Hasher,
    etag_verifies,
)
from mediastore.errors import CorruptObject, S3NotConfigured, StorageUnavailable
from mediastore.files import (
    BACKENDS,
    ListedObject,
    ObjectInfo,
    SourceFile,
    read_for_copy,
)
from veza import metrics
from veza.config import s3_settings_missing

if TYPE_CHECKING:
    from mediastore.s3 import S3MediaStorage

logger = logging.getLogger(__name__)


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


class MediaStorage:
    """What both backends offer on top of Django's `Storage` API."""

    backend: str

    def put(self, key: str, source: SourceFile) -> str:
        """Store `source` under `key` durably and verified, or raise
        `StorageUnavailable`; returns the object's ETag ("" locally)."""
        raise NotImplementedError

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
        """Bulk copy: store a local file whose digests were just computed
        (`read_for_copy`), verified; returns the ETag ("" locally). On S3
        this goes through the native engine, not boto3."""
        raise NotImplementedError

    def read_for_copy(self, path: Path) -> tuple[Digests, bytes | None]:
        """A file's digests for `put_file`, read once (see `read_for_copy`)."""
        return read_for_copy(path, part_size_for=self.part_size_for)

    def part_size_for(self, size: int) -> int | None:
        """The multipart part size a bulk copy of `size` bytes uses, if any."""
        return None

    def remove(self, key: str) -> None:
        """Delete `key`; a missing object is not an error."""
        raise NotImplementedError

    def remove_many(self, keys: list[str]) -> None:
        for key in keys:
            self.remove(key)

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

    def keys(self, prefix: str) -> Iterator[ListedObject]:
        """Every object name under `prefix` with its size, in key order."""
        raise NotImplementedError

    def walk(self, prefix: str) -> Iterator[ListedObject]:
        """Every object under `prefix`, in whatever order is cheapest."""
        return self.keys(prefix)

    def _save(self, name: str, content: File) -> str:  # type: ignore[type-arg]
        # Django's Storage.save() lands here: any File is hashed on the way.
        if isinstance(content, SourceFile):
            self.put(name, content)
            return name
        with tempfile.NamedTemporaryFile(prefix="veza-save-") as spool:
            for chunk in content.chunks():
                spool.write(chunk)
            spool.flush()
            path = Path(spool.name)
            self.put(
                name,
                SourceFile.of(
                    path,
                    content_type=getattr(content, "content_type", None)
                    or "application/octet-stream",
                ),
            )
        return name


class LocalMediaStorage(MediaStorage, FileSystemStorage):
    """Files under MEDIA_ROOT (or `location`), written atomically and fsynced."""

    backend = "local"

    def __init__(self, **options: Any) -> None:
        options.setdefault("allow_overwrite", True)
        super().__init__(**options)

    @property
    def root(self) -> Path:
        return Path(self.location)

    def local_path(self, key: str) -> Path:
        return self.root / _safe_relative(key)

    def put(self, key: str, source: SourceFile) -> str:
        try:
            tmp = self._adopt(key, source.path) if source.movable else None
            if tmp is None:
                with source.path.open("rb") as src:
                    tmp = self._write_temporary(
                        key, iter(lambda: src.read(CHUNK_SIZE), b"")
                    )
            self._commit(tmp, key)
        except OSError as exc:
            metrics.STORAGE_OPERATIONS.labels(self.backend, "put", "error").inc()
            logger.warning("local put of %s failed: %s", key, exc)
            raise StorageUnavailable(details={"backend": self.backend}) from exc
        metrics.STORAGE_OPERATIONS.labels(self.backend, "put", "ok").inc()
        return ""

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
        if data is None:
            return self.put(
                key,
                SourceFile.from_digests(
                    path, digests, content_type=content_type, cache_control=None
                ),
            )
        try:
            self._commit(self._write_temporary(key, [data]), key)
        except OSError as exc:
            metrics.STORAGE_OPERATIONS.labels(self.backend, "put", "error").inc()
            logger.warning("local put of %s failed: %s", key, exc)
            raise StorageUnavailable(details={"backend": self.backend}) from exc
        metrics.STORAGE_OPERATIONS.labels(self.backend, "put", "ok").inc()
        return ""

    def _write_temporary(
        self, key: str, chunks: Iterable[bytes], hasher: Hasher | None = None
    ) -> Path:
        """Write `chunks` beside `key`'s file and fsync them; `_commit` then
        renames, so a reader sees the whole file or none, even after a crash."""
        target = self.local_path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=".incoming-", dir=target.parent)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    out.write(chunk)
                    if hasher is not None:
                        hasher.update(chunk)
                out.flush()
                os.fsync(out.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp

    def _adopt(self, key: str, path: Path) -> Path | None:
        """Move a staged file beside `key`'s file and fsync it, as
        `_write_temporary` leaves a copy; None across filesystems."""
        target = self.local_path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".incoming-{uuid.uuid4().hex}"
        try:
            os.rename(path, tmp)
        except OSError as exc:
            if exc.errno == errno.EXDEV:
                return None
            raise
        try:
            with tmp.open("rb") as f:
                os.fsync(f.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp

    def _commit(self, tmp: Path, key: str) -> None:
        target = self.local_path(key)
        try:
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(target.parent)

    def write_verified(
        self,
        key: str,
        chunks: Iterable[bytes],
        *,
        size: int,
        sha256: str | None = None,
        etag: str | None = None,
    ) -> None:
        """Write `chunks` to `key` atomically, only if they have `size` bytes
        and hash to `sha256` (or, without one, match the S3 `etag`)."""
        if sha256 is None and not etag:
            raise ValueError("write_verified needs a sha256 or an etag to check")
        # A multipart ETag is checked part by part, parts as our engine cuts them.
        hasher = Hasher(PART_SIZE if etag and "-" in etag else None)
        tmp = self._write_temporary(key, chunks, hasher)
        digests = hasher.digests()
        ok = digests.size == size and (
            digests.sha256 == sha256
            if sha256 is not None
            else etag_verifies(etag, digests)
        )
        if not ok:
            tmp.unlink(missing_ok=True)
            raise CorruptObject(
                f"{key}: got {digests.size} bytes, sha256 {digests.sha256}"
            )
        self._commit(tmp, key)
        metrics.STORAGE_OPERATIONS.labels(self.backend, "put", "ok").inc()

    def remove(self, key: str) -> None:
        path = self.local_path(key)
        path.unlink(missing_ok=True)
        metrics.STORAGE_OPERATIONS.labels(self.backend, "delete", "ok").inc()
        # Remove the object's directory when it is empty; others may share it.
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

    def keys(self, prefix: str) -> Iterator[ListedObject]:
        """Files under `prefix`, in key order, one top-level directory at a
        time (object names under a prefix are fixed-length ids or hashes).
        It sorts the top-level names: for a walk in constant memory use
        `walk`."""
        base = self.root / prefix.rstrip("/")
        if not base.is_dir():
            return
        with os.scandir(base) as entries:
            names = sorted(e.name for e in entries)
        for name in names:
            found = sorted(
                self.walk(f"{prefix.rstrip('/')}/{name}"), key=lambda o: o.key
            )
            yield from found

    def walk(self, prefix: str) -> Iterator[ListedObject]:
        """Files under `prefix` (a directory or a file), in no given order."""
        base = self.root / prefix.rstrip("/")
        if base.is_file():
            yield ListedObject(
                key=base.relative_to(self.root).as_posix(), size=base.stat().st_size
            )
            return
        for path, size in _files_under(base):
            yield ListedObject(key=path.relative_to(self.root).as_posix(), size=size)

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.root):
                pass
        except OSError as exc:
            raise StorageUnavailable(
                f"MEDIA_ROOT {self.root} is not writable: {exc}"
            ) from exc


def _files_under(directory: Path) -> Iterator[tuple[Path, int]]:
    """Every file under `directory`, depth first, reading each directory
    as it goes (os.walk lists a whole directory first: a million names
    for `tracks/`)."""
    stack = [os.scandir(directory)] if directory.is_dir() else []
    try:
        while stack:
            entry = next(stack[-1], None)
            if entry is None:
                stack.pop().close()
            elif entry.is_dir(follow_symlinks=False):
                stack.append(os.scandir(entry.path))
            elif not entry.name.startswith(".incoming-"):
                yield Path(entry.path), entry.stat(follow_symlinks=False).st_size
    finally:
        for iterator in stack:
            iterator.close()


def storage_for(backend: str) -> LocalMediaStorage | S3MediaStorage:
    """The storage of one backend (`STORAGES["media_<backend>"]`), built once."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown storage backend {backend!r}")
    return cast("LocalMediaStorage | S3MediaStorage", storages[f"media_{backend}"])


def storage_backends_in_use() -> list[str]:
    """Backends that may hold bytes: local always, S3 when it is enabled."""
    return ["local", "s3"] if settings.AWS_S3_ENABLED else ["local"]


def s3_require() -> None:
    """Raise S3NotConfigured, naming what is missing, unless S3 is usable."""
    missing = ([] if settings.AWS_S3_ENABLED else ["AWS_S3_ENABLED"]) + (
        s3_settings_missing(
            bucket=settings.AWS_STORAGE_BUCKET_NAME,
            access_key=settings.AWS_ACCESS_KEY_ID,
            secret_key=settings.AWS_SECRET_ACCESS_KEY,
        )
    )
    if missing:
        raise S3NotConfigured(
            "S3 is not configured: set " + ", ".join(missing) + ".",
            details={"missing": missing},
        )


def local_storage() -> LocalMediaStorage:
    storage = storage_for("local")
    if not isinstance(storage, LocalMediaStorage):
        raise TypeError("STORAGES['media_local'] must be a LocalMediaStorage")
    return storage


def s3_storage() -> S3MediaStorage:
    # Called per file by copy threads: no import here (each one takes the
    # import lock), the class is checked by what it says it is.
    storage = storage_for("s3")
    if getattr(storage, "backend", None) != "s3" or not hasattr(storage, "transfer"):
        raise TypeError("STORAGES['media_s3'] must be an S3MediaStorage")
    return cast("S3MediaStorage", storage)


def storage_reset(**kwargs: Any) -> None:
    """Forget built storages after a settings change (tests, reconfiguration)."""
    setting = kwargs.get("setting")
    if setting is not None and not (
        setting.startswith("AWS_") or setting in ("MEDIA_ROOT", "STORAGES")
    ):
        return
    for alias in ("media_local", "media_s3"):
        storages._storages.pop(alias, None)  # type: ignore[attr-defined]
