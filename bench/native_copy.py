"""The boto3 copy loop on a native client: obstore (Rust) or awscrt (AWS CRT).

What `bench/boto3_copy.py` does per file, on a native S3 client: read the file
once for MD5 and SHA-256, PUT it as `tracks/<relative path>` with Content-Type
audio/wav and the SHA-256 as user metadata (x-amz-meta-sha256), then verify:

* `--verify etag` (default): the ETag the PUT returned must equal the MD5 we
  computed (the server's digest of what it received; no extra request). For a
  multipart upload (obstore, files over 8 MiB) the PUT returns the
  AWS-style MD5 of the part MD5s, `-N`, which we compute too.
* `--verify head`: HEAD the object and check its size, the SHA-256 metadata
  and that its ETag is the plain or the multipart MD5.

Clients, N uploads in flight (`--workers`):

* `obstore`: `obstore.put` from N threads, unsigned payload;
* `obstore-async`: `obstore.put_async` under an asyncio semaphore, reading
  and hashing in worker threads;
* `awscrt`: one `awscrt.s3.S3Client`, one PUT meta request per file from N
  threads, always a single PUT carrying Content-MD5 (the server rejects a
  corrupted body with BadDigest); its multipart path is switched off because
  `rclone serve s3` answers CreateMultipartUpload with an XML root awscrt does
  not parse.

Files up to 8 MiB go up as the bytes we read (`--body path` hands the client
the path instead, which it reads again). `--checksum sha256` also sends
x-amz-checksum-sha256 (obstore computes it, awscrt sends ours), and
`--signed-payload` has obstore sign the body's SHA-256. Exits 1 if any file
fails or does not verify.

    python bench/native_copy.py DIR BUCKET --endpoint URL
        --client obstore|obstore-async|awscrt [--workers 8] [--verify etag|head]

Keys come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import io
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

if TYPE_CHECKING:
    from awscrt.s3 import S3Client
    from obstore import Attributes
    from obstore.store import ClientConfig, RetryConfig, S3Config, S3Store

REGION = "us-east-1"
CONTENT_TYPE = "audio/wav"
PART_SIZE = 8 * 1024 * 1024  # obstore: larger files go multipart in parts of this
SINGLE_PUT_MAX = 5 * 1024**3  # S3's limit for one PUT (awscrt never goes multipart)
TIMEOUT = 300.0  # seconds for one awscrt request


@dataclass(frozen=True)
class Digest:
    """What one read of a file gives: its bytes (single PUT) and its digests."""

    size: int
    md5: bytes
    sha256: bytes
    etag: str  # the ETag the PUT should return: plain MD5 or MD5-of-MD5s-N
    data: bytes | None  # None when the file goes up multipart from its path

    @property
    def accepted_etags(self) -> set[str]:
        """ETags a HEAD may show: the plain MD5 (rclone) or the multipart one."""
        return {self.md5.hex(), self.etag}


def digest(path: Path, keep_bytes: bool, multipart: bool) -> Digest:
    """Read the file once: MD5, SHA-256 and, above PART_SIZE, the part MD5s.

    Files up to PART_SIZE are read whole (their bytes kept for the PUT if
    `keep_bytes`); larger ones in parts, and if they go up `multipart` the
    ETag to expect is the MD5 of the part MD5s, `-N`.
    """
    if path.stat().st_size <= PART_SIZE:
        data = path.read_bytes()
        md5 = md5_hash(data).digest()
        sha256 = hashlib.sha256(data).digest()
        body = data if keep_bytes else None
        return Digest(len(data), md5, sha256, md5.hex(), body)
    whole, sha, parts, size = md5_hash(), hashlib.sha256(), [], 0
    with path.open("rb") as f:
        while part := f.read(PART_SIZE):
            size += len(part)
            whole.update(part)
            sha.update(part)
            parts.append(md5_hash(part).digest())
    etag = f"{md5_hash(b''.join(parts)).hexdigest()}-{len(parts)}"
    if not multipart:
        etag = whole.hexdigest()
    return Digest(size, whole.digest(), sha.digest(), etag, None)


def md5_hash(data: bytes = b"") -> hashlib._Hash:
    """MD5 as S3 uses it: the ETag and Content-MD5, not for security."""
    return hashlib.md5(data, usedforsecurity=False)


def unquote_etag(etag: str | None) -> str:
    return (etag or "").strip('"')


class Mismatch(RuntimeError):
    pass


def check(
    key: str,
    d: Digest,
    etag: str | None,
    size: int | None = None,
    sha256: str | None = None,
    head: bool = False,
) -> None:
    """Raise Mismatch unless what the server answered fits the digests."""
    got = unquote_etag(etag)
    if (got not in d.accepted_etags) if head else (got != d.etag):
        raise Mismatch(f"{key}: ETag {etag!r}, expected {d.etag!r}")
    if size is not None and size != d.size:
        raise Mismatch(f"{key}: {size} bytes, expected {d.size}")
    if sha256 is not None and sha256 != d.sha256.hex():
        raise Mismatch(f"{key}: sha256 {sha256!r}, expected {d.sha256.hex()}")


# --- obstore ------------------------------------------------------------------


def obstore_store(args: argparse.Namespace) -> S3Store:
    from obstore.store import S3Store

    config: S3Config = {
        "endpoint": args.endpoint,
        "region": REGION,
        "access_key_id": os.environ["AWS_ACCESS_KEY_ID"],
        "secret_access_key": os.environ["AWS_SECRET_ACCESS_KEY"],
        "virtual_hosted_style_request": False,
        # The body is not hashed for the signature: we verify it ourselves.
        "unsigned_payload": not args.signed_payload,
    }
    if args.checksum == "sha256":
        config["checksum_algorithm"] = "sha256"
    client: ClientConfig = {
        "allow_http": args.endpoint.startswith("http://"),
        "user_agent": "veza-bench obstore",
        "connect_timeout": timedelta(seconds=5),
        "timeout": timedelta(seconds=TIMEOUT),
    }
    retry: RetryConfig = {"max_retries": 5, "retry_timeout": timedelta(minutes=3)}
    return S3Store(
        args.bucket, config=config, client_options=client, retry_config=retry
    )


def obstore_body(path: Path, d: Digest) -> Path | bytes:
    """The bytes we read for a single PUT, else the path (obstore reads it)."""
    return path if d.data is None else d.data


def obstore_attributes(d: Digest) -> Attributes:
    return {"Content-Type": CONTENT_TYPE, "sha256": d.sha256.hex()}


def run_obstore(args: argparse.Namespace, files: list[Path]) -> list[str]:
    import obstore

    store = obstore_store(args)

    def copy(path: Path) -> None:
        d = digest(path, keep_bytes=args.body == "bytes", multipart=True)
        key = object_key(args.source, path)
        result = obstore.put(
            store,
            key,
            obstore_body(path, d),
            attributes=obstore_attributes(d),
            use_multipart=d.size > PART_SIZE,
            chunk_size=PART_SIZE,
        )
        if args.verify == "etag":
            check(key, d, result["e_tag"])
        else:
            head = obstore.get(store, key, options={"head": True})
            check(
                key,
                d,
                head.meta["e_tag"],
                head.meta["size"],
                head.attributes.get("sha256"),
                head=True,
            )

    return run_threads(copy, files, args.workers)


def run_obstore_async(args: argparse.Namespace, files: list[Path]) -> list[str]:
    import obstore

    store = obstore_store(args)

    async def copy(path: Path, slots: asyncio.Semaphore) -> None:
        async with slots:
            d = await asyncio.to_thread(digest, path, args.body == "bytes", True)
            key = object_key(args.source, path)
            result = await obstore.put_async(
                store,
                key,
                obstore_body(path, d),
                attributes=obstore_attributes(d),
                use_multipart=d.size > PART_SIZE,
                chunk_size=PART_SIZE,
            )
            if args.verify == "etag":
                check(key, d, result["e_tag"])
            else:
                head = await obstore.get_async(store, key, options={"head": True})
                check(
                    key,
                    d,
                    head.meta["e_tag"],
                    head.meta["size"],
                    head.attributes.get("sha256"),
                    head=True,
                )

    async def main() -> list[str]:
        slots = asyncio.Semaphore(args.workers)
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ThreadPoolExecutor(args.workers))
        results = await asyncio.gather(
            *(copy(p, slots) for p in files), return_exceptions=True
        )
        return [f"{p}: {describe(r)}" for p, r in zip(files, results, strict=True) if r]

    return asyncio.run(main())


# --- awscrt -------------------------------------------------------------------


def awscrt_client(args: argparse.Namespace) -> S3Client:
    from awscrt import auth, s3

    credentials = auth.AwsCredentialsProvider.new_static(
        os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]
    )
    tls = urlsplit(args.endpoint).scheme == "https"
    return s3.S3Client(
        region=REGION,
        tls_mode=s3.S3RequestTlsMode.ENABLED if tls else s3.S3RequestTlsMode.DISABLED,
        # SigV4, UNSIGNED-PAYLOAD, x-amz-content-sha256 header.
        signing_config=s3.create_default_s3_signing_config(
            region=REGION, credential_provider=credentials
        ),
        multipart_upload_threshold=SINGLE_PUT_MAX,
        retry_config=s3.S3RetryConfig(max_retries=5),
        connect_timeout_ms=5000,
    )


def run_awscrt(args: argparse.Namespace, files: list[Path]) -> list[str]:
    from awscrt import http, s3

    client = awscrt_client(args)
    host = urlsplit(args.endpoint).netloc  # the client connects where Host says

    def request(
        method: str,
        key: str,
        headers: list[tuple[str, str]],
        body: io.BytesIO | None = None,
        **kwargs: Any,
    ) -> dict[str, str]:
        """One meta request (kwargs go to make_request); the response headers,
        names lower-cased (rclone sends `Etag`)."""
        answer: dict[str, str] = {}

        def on_headers(
            status_code: int, headers: list[tuple[str, str]], **_: Any
        ) -> None:
            answer.update((name.lower(), value) for name, value in headers)

        path = f"/{args.bucket}/{quote(key)}"
        req = http.HttpRequest(
            method,
            path,
            http.HttpHeaders([("Host", host), *headers]),
            body,
        )
        meta = client.make_request(request=req, on_headers=on_headers, **kwargs)
        meta.finished_future.result(TIMEOUT)
        return answer

    def copy(path: Path) -> None:
        d = digest(path, keep_bytes=args.body == "bytes", multipart=False)
        key = object_key(args.source, path)
        if d.size > SINGLE_PUT_MAX:
            raise Mismatch(f"{key}: over {SINGLE_PUT_MAX} bytes")
        headers = [
            ("Content-Length", str(d.size)),
            ("Content-Type", CONTENT_TYPE),
            ("Content-MD5", base64.b64encode(d.md5).decode()),
            ("x-amz-meta-sha256", d.sha256.hex()),
        ]
        if args.checksum == "sha256":
            headers.append(
                ("x-amz-checksum-sha256", base64.b64encode(d.sha256).decode())
            )
        put = request(
            "PUT",
            key,
            headers,
            # Our bytes, or the path for the CRT to read (it then ignores body).
            body=None if d.data is None else io.BytesIO(d.data),
            send_filepath=str(path) if d.data is None else None,
            type=s3.S3RequestType.PUT_OBJECT,
        )
        if args.verify == "etag":
            check(key, d, put.get("etag"))
        else:
            head = request(
                "HEAD",
                key,
                [],
                type=s3.S3RequestType.DEFAULT,
                operation_name="HeadObject",
            )
            check(
                key,
                d,
                head.get("etag"),
                int(head.get("content-length", -1)),
                head.get("x-amz-meta-sha256"),
                head=True,
            )

    return run_threads(copy, files, args.workers)


# --- driver -------------------------------------------------------------------


def object_key(source: Path, path: Path) -> str:
    return f"tracks/{path.relative_to(source).as_posix()}"


def describe(error: BaseException) -> str:
    """The error, with the HTTP status and S3 error body awscrt attaches."""
    text = f"{type(error).__name__}: {error}"
    status, body = getattr(error, "status_code", None), getattr(error, "body", None)
    if status is not None:
        text += f" (HTTP {status}: {(body or b'').decode(errors='replace')[:200]})"
    return " ".join(text.split())


def run_threads(
    copy: Callable[[Path], None], files: list[Path], workers: int
) -> list[str]:
    """copy() every file from `workers` threads; the failures as messages."""
    failures: list[str] = []
    lock = threading.Lock()

    def guarded(path: Path) -> None:
        try:
            copy(path)
        except Exception as error:  # every failure is reported, none stops the rest
            with lock:
                failures.append(f"{path}: {describe(error)}")

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(guarded, files))
    return failures


RUNNERS = {
    "obstore": run_obstore,
    "obstore-async": run_obstore_async,
    "awscrt": run_awscrt,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("bucket")
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--client", choices=sorted(RUNNERS), required=True)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--verify", choices=["etag", "head"], default="etag")
    parser.add_argument(
        "--body",
        choices=["bytes", "path"],
        default="bytes",
        help="hand the client the bytes we read (default) or the file's path",
    )
    parser.add_argument("--checksum", choices=["none", "sha256"], default="none")
    parser.add_argument(
        "--signed-payload",
        action="store_true",
        help="obstore: sign the body's SHA-256 instead of UNSIGNED-PAYLOAD",
    )
    args = parser.parse_args()
    files = sorted(p for p in args.source.rglob("*") if p.is_file())
    failures = RUNNERS[args.client](args, files)
    for line in failures[:20]:
        print(line, file=sys.stderr)
    if failures:
        print(f"{len(failures)} of {len(files)} files failed", file=sys.stderr)
        return 1
    print(f"{len(files)} files copied and verified ({args.client}, {args.verify})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
