"""A multipart upload handler that streams to disk and hashes as bytes arrive."""

from __future__ import annotations

import base64
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler
from django.http import HttpRequest

from mediastore.files import BucketCopy
from veza.errors import PayloadTooLarge

# Room for the multipart boundaries and the other form fields.
MULTIPART_OVERHEAD = 64 * 1024


class StagedUpload(UploadedFile):  # type: ignore[type-arg]
    """An uploaded file on disk, with its size and digests already known."""

    def __init__(
        self,
        *,
        path: Path,
        name: str,
        content_type: str,
        size: int,
        sha256: str,
        md5_base64: str | None,
        bucket_copy: BucketCopy | None = None,
    ) -> None:
        # Closed with the request's other files when the response ends.
        file = open(path, "rb")  # noqa: SIM115
        super().__init__(file, name=name, content_type=content_type, size=size)
        self.path = path
        self.sha256 = sha256
        self.md5_base64 = md5_base64
        # Where the same bytes already are in the S3 bucket (an upload sent
        # straight there): storing copies them in the bucket.
        self.bucket_copy = bucket_copy

    def temporary_file_path(self) -> str:
        return str(self.path)


class HashingUploadHandler(FileUploadHandler):
    """Write each file to a staging file, computing SHA-256 and MD5 in one pass.

    Memory stays flat whatever the size; the limit is enforced while reading,
    so an oversized upload stops at the limit, not at the end.
    """

    # Large reads: small ones cost a buffer copy each in the WSGI server.
    chunk_size = 1024 * 1024

    def __init__(
        self, request: HttpRequest, *, max_bytes: int, staging_dir: Path, want_md5: bool
    ) -> None:
        super().__init__(request)
        self.max_bytes = max_bytes
        # MD5 is slow and only needed as Content-MD5 of a single-part S3 PUT.
        self.want_md5 = want_md5
        self.staging_dir = staging_dir
        self.staged: list[Path] = []
        self._file: Any = None

    def handle_raw_input(
        self,
        input_data: Any,
        META: dict[str, Any],
        content_length: int,
        boundary: str,
        encoding: str | None = None,
    ) -> None:
        if content_length and content_length > self.max_bytes + MULTIPART_OVERHEAD:
            raise PayloadTooLarge(details={"max_bytes": self.max_bytes})

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        self.staging_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="upload-", dir=self.staging_dir)
        self.staged.append(Path(name))
        self._file = os.fdopen(fd, "wb")
        self._sha256 = hashlib.sha256()
        self._md5 = hashlib.md5() if self.want_md5 else None  # noqa: S324
        self._size = 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        self._size += len(raw_data)
        if self._size > self.max_bytes:
            raise PayloadTooLarge(details={"max_bytes": self.max_bytes})
        self._file.write(raw_data)
        self._sha256.update(raw_data)
        if self._md5 is not None:
            self._md5.update(raw_data)

    def file_complete(self, file_size: int) -> StagedUpload:
        self._file.close()
        return StagedUpload(
            path=self.staged[-1],
            name=self.file_name or "upload",
            content_type=self.content_type or "application/octet-stream",
            size=self._size,
            sha256=self._sha256.hexdigest(),
            md5_base64=(
                base64.b64encode(self._md5.digest()).decode() if self._md5 else None
            ),
        )

    def cleanup(self) -> None:
        """Remove every staging file; called when the request is done."""
        if self._file is not None and not self._file.closed:
            self._file.close()
        for path in self.staged:
            path.unlink(missing_ok=True)


def stage_file(
    path: Path,
    *,
    name: str,
    want_md5: bool,
    bucket_copy: BucketCopy | None = None,
    sha256_hex: str | None = None,
    chunk_size: int = 1024 * 1024,
) -> StagedUpload:
    """A file already on disk (a resumable upload's bytes) as a StagedUpload,
    read once for its SHA-256 (and MD5) unless its SHA-256 is given (it was
    hashed as it was downloaded) and no MD5 is wanted; `bucket_copy` says
    where the bucket holds it too."""
    md5_base64 = None
    if sha256_hex is not None and not want_md5:
        size = path.stat().st_size
    else:
        sha256 = hashlib.sha256()
        md5 = hashlib.md5() if want_md5 else None  # noqa: S324
        size = 0
        with path.open("rb") as f:
            while chunk := f.read(chunk_size):
                size += len(chunk)
                sha256.update(chunk)
                if md5 is not None:
                    md5.update(chunk)
        sha256_hex = sha256.hexdigest()
        if md5 is not None:
            md5_base64 = base64.b64encode(md5.digest()).decode()
    return StagedUpload(
        path=path,
        name=name or "upload",
        content_type="application/octet-stream",
        size=size,
        sha256=sha256_hex,
        md5_base64=md5_base64,
        bucket_copy=bucket_copy,
    )
