"""The ceiling of the client the issue mandates: a bare boto3 copy loop.

What `migrate_storage --to s3` does per file, with nothing else: read the file
once for MD5 and SHA-256, PUT it with Content-MD5 and the SHA-256 as metadata
on one shared client configured as ours (standard retries, explicit checksum
mode, unsigned payload, fixed user agent), then HEAD it and check size and
SHA-256. No Django, no database, no rows, no progress; N threads.

    python bench/boto3_copy.py DIR BUCKET --endpoint URL [--workers 8]

Keys come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import botocore
from botocore.config import Config

CHUNK = 1024 * 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("bucket")
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()
    client = boto3.session.Session().client(
        "s3",
        endpoint_url=args.endpoint,
        region_name="us-east-1",
        aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        config=Config(
            user_agent=f"veza-bench botocore/{botocore.__version__}",
            signature_version="s3v4",
            s3={"addressing_style": "path", "payload_signing_enabled": False},
            retries={"mode": "standard", "max_attempts": 5},
            max_pool_connections=args.workers,
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )

    def copy(path: Path) -> None:
        md5, sha256, size = hashlib.md5(), hashlib.sha256(), 0  # noqa: S324
        with path.open("rb") as f:
            while chunk := f.read(CHUNK):
                size += len(chunk)
                md5.update(chunk)
                sha256.update(chunk)
        key = f"tracks/{path.relative_to(args.source).as_posix()}"
        with path.open("rb") as body:
            client.put_object(
                Bucket=args.bucket,
                Key=key,
                Body=body,
                ContentLength=size,
                ContentMD5=base64.b64encode(md5.digest()).decode(),
                ContentType="audio/wav",
                Metadata={"sha256": sha256.hexdigest()},
            )
        head = client.head_object(Bucket=args.bucket, Key=key)
        metadata = {k.lower(): v for k, v in head["Metadata"].items()}
        if (
            head["ContentLength"] != size
            or metadata.get("sha256") != sha256.hexdigest()
        ):
            raise RuntimeError(f"{key} did not verify: {head}")

    files = sorted(args.source.rglob("*.wav"))
    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        for _ in pool.map(copy, files):
            pass
    print(f"{len(files)} files copied and verified")
    return 0


if __name__ == "__main__":
    sys.exit(main())
