"""One set of S3 settings, and the two clients built from it.

django-storages (boto3) serves the request path: uploads, ranged reads,
presigned URLs. The native transfer engine (obstore, `mediastore.transfer`)
does bulk copies. Both are built here from the same `S3Settings`, so they
talk to the same endpoint, bucket, region and addressing style with the same
credentials, TLS rules, retries and timeouts (`tests/mediastore/test_config.py`
checks that they agree).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings

if TYPE_CHECKING:
    from botocore.config import Config

# A fixed string, which also names us in the server's access logs: botocore
# rebuilds its own twice per request, a tenth of its CPU.
USER_AGENT = "veza-media/1"


@dataclass(frozen=True)
class S3Settings:
    bucket: str
    access_key: str
    secret_key: str
    endpoint_url: str
    # Presigned URLs are signed for this host (the host is in the signature).
    public_endpoint_url: str | None
    region: str
    addressing_style: Literal["path", "virtual"]
    # TLS: verify against the system roots (True), not at all (False), or
    # against a CA bundle file as well (its path).
    verify: bool | str
    max_attempts: int
    connect_timeout: float
    read_timeout: float
    sign_payload: bool
    checksum_mode: Literal["when_supported", "when_required"]
    # "" or "sha256": the native engine also sends x-amz-checksum-sha256,
    # for servers that verify it (AWS S3, MinIO).
    checksum_algorithm: str
    max_pool_connections: int
    multipart_threshold: int

    @classmethod
    def from_settings(cls) -> S3Settings:
        return cls(
            bucket=settings.AWS_STORAGE_BUCKET_NAME,
            access_key=settings.AWS_ACCESS_KEY_ID,
            secret_key=settings.AWS_SECRET_ACCESS_KEY,
            # AWS itself when none is set: its regional endpoint, named here
            # so both clients use the same host (boto3 would pick the
            # global one for us-east-1, object_store the regional one).
            endpoint_url=settings.AWS_S3_ENDPOINT_URL
            or f"https://s3.{settings.AWS_S3_REGION_NAME}.amazonaws.com",
            public_endpoint_url=settings.AWS_S3_PUBLIC_ENDPOINT_URL or None,
            region=settings.AWS_S3_REGION_NAME,
            addressing_style=(
                "virtual" if settings.AWS_S3_ADDRESSING_STYLE == "virtual" else "path"
            ),
            verify=settings.AWS_S3_VERIFY,
            max_attempts=settings.AWS_S3_MAX_ATTEMPTS,
            connect_timeout=settings.AWS_S3_CONNECT_TIMEOUT,
            read_timeout=settings.AWS_S3_READ_TIMEOUT,
            sign_payload=settings.AWS_S3_SIGN_PAYLOAD,
            checksum_mode=settings.AWS_S3_CHECKSUM_MODE,
            checksum_algorithm=settings.AWS_S3_CHECKSUM_ALGORITHM,
            max_pool_connections=settings.AWS_S3_MAX_POOL_CONNECTIONS,
            multipart_threshold=settings.AWS_S3_MULTIPART_THRESHOLD,
        )


def botocore_config(s3: S3Settings) -> Config:
    # Imported here: bulk copies (obstore) never load botocore.
    from botocore.config import Config

    return Config(
        user_agent=USER_AGENT,
        signature_version="s3v4",
        s3={
            "addressing_style": s3.addressing_style,
            # Explicit, so it holds on http and https alike: left unset,
            # botocore signs every body over http and hashes it once more.
            "payload_signing_enabled": s3.sign_payload,
        },
        retries={"mode": "standard", "max_attempts": s3.max_attempts},
        max_pool_connections=s3.max_pool_connections,
        connect_timeout=s3.connect_timeout,
        read_timeout=s3.read_timeout,
        request_checksum_calculation=s3.checksum_mode,
        response_checksum_validation=s3.checksum_mode,
    )


def django_storages_options(
    s3: S3Settings, *, endpoint_url: str | None
) -> dict[str, Any]:
    """Options of django-storages' S3Storage (every one, so no AWS_* setting
    it would read on its own changes what we built)."""
    return {
        "bucket_name": s3.bucket,
        "access_key": s3.access_key,
        "secret_key": s3.secret_key,
        "security_token": None,
        "session_profile": None,
        "endpoint_url": endpoint_url,
        "region_name": s3.region,
        "addressing_style": s3.addressing_style,
        "verify": s3.verify,
        "use_ssl": True,
        "client_config": botocore_config(s3),
        "file_overwrite": True,  # names are deterministic: retries rewrite them
        "default_acl": None,
        "querystring_auth": True,
        "custom_domain": None,
        "location": "",
        "object_parameters": {},
        "gzip": False,
    }


def _virtual_host_endpoint(endpoint: str, bucket: str) -> str:
    # boto3 takes the service endpoint and prefixes the bucket itself;
    # object_store wants the bucket's own endpoint for virtual-hosted style.
    parts = urlsplit(endpoint)
    host = f"{bucket}.{parts.hostname}"
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def obstore_options(
    s3: S3Settings, *, endpoint_url: str | None = None
) -> dict[str, Any]:
    """Keyword arguments of `obstore.store.S3Store` for these settings."""
    endpoint = endpoint_url or s3.endpoint_url
    virtual = s3.addressing_style == "virtual"
    client: dict[str, Any] = {
        "user_agent": USER_AGENT,
        "connect_timeout": timedelta(seconds=s3.connect_timeout),
        "read_timeout": timedelta(seconds=s3.read_timeout),
        # object_store's whole-request limit (30 s by default) would cut long
        # transfers; a stalled one is caught by the read timeout instead.
        "timeout": timedelta(hours=1),
        "pool_max_idle_per_host": str(s3.max_pool_connections),
    }
    if endpoint and endpoint.startswith("http://"):
        client["allow_http"] = True
    if s3.verify is False:
        client["allow_invalid_certificates"] = True
    elif isinstance(s3.verify, str):
        client["root_certificate"] = Path(s3.verify).read_text()
    options: dict[str, Any] = {
        "bucket": s3.bucket,
        "region": s3.region,
        "access_key_id": s3.access_key,
        "secret_access_key": s3.secret_key,
        "virtual_hosted_style_request": virtual,
        "unsigned_payload": not s3.sign_payload,
        "client_options": client,
        "retry_config": {
            "max_retries": max(0, s3.max_attempts - 1),
            "retry_timeout": timedelta(seconds=max(30.0, 2 * s3.read_timeout)),
        },
    }
    if s3.checksum_algorithm:
        options["checksum_algorithm"] = s3.checksum_algorithm
    if endpoint:
        options["endpoint"] = (
            _virtual_host_endpoint(endpoint, s3.bucket) if virtual else endpoint
        )
    return options
