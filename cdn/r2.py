"""Cloudflare R2 presigned URLs: S3 SigV4 query signing, region `auto`."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import time
from collections.abc import Mapping
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from cdn.errors import CdnSigningError
from cdn.provider import SignedDirectory, SignedUrl, wire_path

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_EXPIRES = 604800  # 7 days, the SigV4 limit


def _encode(text: str) -> str:
    return quote(text, safe="-_.~")


@functools.lru_cache(maxsize=16)
def _signing_key(secret_key: str, date: str, region: str, service: str) -> bytes:
    key = f"AWS4{secret_key}".encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.digest(key, part.encode(), "sha256")
    return key


def _signature(
    *,
    method: str,
    host: str,
    path: str,
    query: Mapping[str, str],
    secret_key: str,
    amz_date: str,
    region: str,
    service: str,
) -> tuple[str, str]:
    canonical_query = "&".join(
        sorted(f"{_encode(k)}={_encode(v)}" for k, v in query.items())
    )
    canonical_request = "\n".join(
        [method, path, canonical_query, f"host:{host}", "", "host", "UNSIGNED-PAYLOAD"]
    )
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join(
        [
            ALGORITHM,
            amz_date,
            scope,
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )
    key = _signing_key(secret_key, amz_date[:8], region, service)
    signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    return canonical_query, signature


def sigv4_presign(
    *,
    url: str,
    access_key: str,
    secret_key: str,
    region: str,
    expires_in: int,
    now: dt.datetime,
    method: str = "GET",
    service: str = "s3",
) -> str:
    """A SigV4 query-signed URL (`url` path percent-encoded, no query)."""
    if not access_key or not secret_key:
        raise ValueError("the access key pair is incomplete")
    if not 1 <= expires_in <= MAX_EXPIRES:
        raise ValueError(f"expiry must be 1 to {MAX_EXPIRES} seconds: {expires_in}")
    parts = urlsplit(url)
    # S3 signs each path segment URI-encoded once.
    path = quote(unquote(parts.path), safe="/-_.~")
    amz_date = now.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    query = {
        "X-Amz-Algorithm": ALGORITHM,
        "X-Amz-Credential": f"{access_key}/{scope}",
        "X-Amz-Date": amz_date,
        "X-Amz-Expires": str(expires_in),
        "X-Amz-SignedHeaders": "host",
    }
    canonical_query, signature = _signature(
        method=method,
        host=parts.netloc,
        path=path,
        query=query,
        secret_key=secret_key,
        amz_date=amz_date,
        region=region,
        service=service,
    )
    return (
        f"{parts.scheme}://{parts.netloc}{path}?{canonical_query}"
        f"&X-Amz-Signature={signature}"
    )


def sigv4_verify_url(
    *, url: str, secret_keys: Mapping[str, str], now: int, method: str = "GET"
) -> bool:
    """What the S3 API (R2) decides for a presigned GET of `url`."""
    parts = urlsplit(url)
    query: dict[str, str] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name in query:
            return False
        query[name] = value
    signature = query.pop("X-Amz-Signature", "")
    try:
        access_key, date, region, service, terminal = query["X-Amz-Credential"].split(
            "/"
        )
        amz_date = query["X-Amz-Date"]
        expires_in = int(query["X-Amz-Expires"])
        issued = dt.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    except (KeyError, ValueError):
        return False
    secret_key = secret_keys.get(access_key)
    if (
        secret_key is None
        or query.get("X-Amz-Algorithm") != ALGORITHM
        or query.get("X-Amz-SignedHeaders") != "host"
        or terminal != "aws4_request"
        or date != amz_date[:8]
        or not 1 <= expires_in <= MAX_EXPIRES
        or not issued.timestamp() <= now < issued.timestamp() + expires_in
    ):
        return False
    _, expected = _signature(
        method=method,
        host=parts.netloc,
        path=quote(unquote(parts.path), safe="/-_.~"),
        query=query,
        secret_key=secret_key,
        amz_date=amz_date,
        region=region,
        service=service,
    )
    return hmac.compare_digest(expected.encode(), signature.encode())


def r2_endpoint(account_id: str) -> str:
    return f"https://{account_id}.r2.cloudflarestorage.com"


class R2Provider:
    """Presigned GETs on R2's S3 API domain (never cached by a CDN)."""

    name = "r2"

    def __init__(
        self,
        *,
        endpoint_url: str,
        bucket: str,
        access_key: str,
        secret_key: str,
        region: str = "auto",
    ) -> None:
        self.endpoint_url = endpoint_url.rstrip("/")
        self.bucket = bucket
        self.access_key = access_key
        self.secret_key = secret_key
        self.region = region

    def sign_url(
        self, *, path: str, expires_at: int, client_ip: str | None = None
    ) -> SignedUrl:
        now = int(time.time())
        try:
            url = sigv4_presign(
                url=f"{self.endpoint_url}/{self.bucket}{wire_path(path)}",
                access_key=self.access_key,
                secret_key=self.secret_key,
                region=self.region,
                expires_in=expires_at - now,
                now=dt.datetime.fromtimestamp(now, tz=dt.UTC),
            )
        except ValueError as exc:
            raise CdnSigningError(f"R2 signing failed: {exc}") from exc
        return SignedUrl(url, expires_at)

    def sign_directory(
        self, *, path: str, expires_at: int, client_ip: str | None = None
    ) -> SignedDirectory:
        raise CdnSigningError(
            "R2 presigned URLs sign one object; serve HLS through a custom "
            "domain with the Cloudflare provider"
        )

    def verify(
        self,
        *,
        url: str,
        now: int,
        client_ip: str | None = None,
        country: str | None = None,
        cookies: Mapping[str, str] | None = None,
    ) -> bool:
        if not url.startswith(f"{self.endpoint_url}/{self.bucket}/"):
            return False
        return sigv4_verify_url(
            url=url, secret_keys={self.access_key: self.secret_key}, now=now
        )
