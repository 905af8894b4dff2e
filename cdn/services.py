"""The CDN interface the other apps call: sign a path, or say it cannot."""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings

from cdn.bunny import BunnyProvider
from cdn.cloudflare import CloudflareProvider
from cdn.cloudfront import CloudFrontProvider
from cdn.errors import CdnSigningError, CdnUnavailable
from cdn.provider import CdnProvider, SignedDirectory, SignedUrl
from cdn.r2 import R2Provider, r2_endpoint
from veza import metrics

__all__ = [
    "CdnService",
    "CdnSigningError",
    "CdnUnavailable",
    "SignedDirectory",
    "SignedUrl",
    "cdn_cache_control",
    "cdn_is_enabled",
    "cdn_playlist_cache_control",
    "cdn_segment_cache_control",
    "cdn_service",
    "cdn_signed_directory",
    "cdn_signed_url",
    "cdn_signing_failed",
    "cdn_verify",
]

logger = logging.getLogger(__name__)


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise CdnSigningError(f"cannot read the {what} {path!r}: {exc}") from exc


def _previous_cloudfront_keys() -> dict[str, rsa.RSAPublicKey]:
    if not (
        settings.CDN_PREVIOUS_KEY_PAIR_ID and settings.CDN_PREVIOUS_PUBLIC_KEY_FILE
    ):
        return {}
    pem = _read(settings.CDN_PREVIOUS_PUBLIC_KEY_FILE, "previous CloudFront public key")
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError as exc:
        raise CdnSigningError(f"the previous CloudFront public key: {exc}") from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise CdnSigningError("the previous CloudFront public key is not RSA")
    return {settings.CDN_PREVIOUS_KEY_PAIR_ID: key}


def _build_provider(name: str) -> CdnProvider:
    if name == "bunny":
        return BunnyProvider(
            base_url=settings.CDN_BASE_URL,
            key=settings.CDN_SECURITY_KEY,
            previous_key=settings.CDN_PREVIOUS_SECURITY_KEY,
            scheme=settings.CDN_BUNNY_TOKEN_SCHEME,
            countries=settings.CDN_BUNNY_COUNTRIES_ALLOWED,
            countries_blocked=settings.CDN_BUNNY_COUNTRIES_BLOCKED,
            speed_limit=settings.CDN_BUNNY_SPEED_LIMIT,
        )
    if name == "cloudflare":
        return CloudflareProvider(
            base_url=settings.CDN_BASE_URL,
            key=settings.CDN_SECURITY_KEY,
            previous_key=settings.CDN_PREVIOUS_SECURITY_KEY,
            ttl=settings.CDN_TOKEN_TTL,
            encoding=settings.CDN_CLOUDFLARE_MAC_ENCODING,
            prefix_length=settings.CDN_CLOUDFLARE_PREFIX_LENGTH,
        )
    if name == "cloudfront":
        return CloudFrontProvider(
            base_url=settings.CDN_BASE_URL,
            key_pair_id=settings.CDN_KEY_PAIR_ID,
            private_key_pem=_read(settings.CDN_PRIVATE_KEY_FILE, "CloudFront key"),
            previous_public_keys=_previous_cloudfront_keys(),
        )
    if name == "r2":
        return R2Provider(
            endpoint_url=settings.CDN_BASE_URL
            or r2_endpoint(settings.CDN_R2_ACCOUNT_ID),
            bucket=settings.CDN_R2_BUCKET,
            access_key=settings.CDN_R2_ACCESS_KEY_ID,
            secret_key=settings.CDN_R2_SECRET_ACCESS_KEY,
        )
    raise CdnSigningError(f"unknown CDN provider {name!r}")


class CdnService:
    """The configured CDN. It always exists; `is_enabled` gates its use."""

    def __init__(self, *, is_enabled: bool, provider_name: str, fallback: str) -> None:
        self.is_enabled = is_enabled
        self.provider_name = provider_name
        self.fallback = fallback
        self._provider: CdnProvider | None = None
        self._lock = threading.Lock()

    @property
    def provider(self) -> CdnProvider:
        """The provider, built on first use; a failed build is retried later."""
        if not self.is_enabled:
            raise CdnSigningError("the CDN is disabled")
        if self._provider is None:
            with self._lock:
                if self._provider is None:
                    self._provider = _build_provider(self.provider_name)
        return self._provider


@functools.cache
def cdn_service() -> CdnService:
    """The CDN service of this process, built from settings on first use."""
    return CdnService(
        is_enabled=settings.CDN_ENABLED,
        provider_name=settings.CDN_PROVIDER,
        fallback=settings.CDN_FALLBACK,
    )


def cdn_reset(**kwargs: Any) -> None:
    """Forget the built service, after settings change (tests, reconfiguration)."""
    cdn_service.cache_clear()


def cdn_is_enabled() -> bool:
    """Whether playback URLs should come from the CDN."""
    return cdn_service().is_enabled


def cdn_signed_url(
    *, path: str, expires_at: int, client_ip: str | None = None
) -> SignedUrl:
    """A CDN URL for the object at `path`, signed until `expires_at`.

    `path` is decoded and starts with /; `expires_at` is Unix seconds (the
    URL may expire earlier: Cloudflare's rule fixes the TTL). Raises
    CdnSigningError when the URL cannot be signed.
    """
    return cdn_service().provider.sign_url(
        path=path, expires_at=expires_at, client_ip=client_ip
    )


def cdn_signed_directory(
    *, path: str, expires_at: int | None = None, client_ip: str | None = None
) -> SignedDirectory:
    """One token for everything under the directory `path` (an HLS package).

    `expires_at` defaults to now + CDN_TOKEN_TTL. Raises CdnSigningError when
    the provider cannot scope a directory (R2) or signing fails.
    """
    if expires_at is None:
        expires_at = int(time.time()) + settings.CDN_TOKEN_TTL
    return cdn_service().provider.sign_directory(
        path=path, expires_at=expires_at, client_ip=client_ip
    )


def cdn_verify(
    *,
    url: str,
    now: int | None = None,
    client_ip: str | None = None,
    country: str | None = None,
    cookies: Mapping[str, str] | None = None,
) -> bool:
    """What the configured edge would decide for `url`: serve (True) or 403."""
    return cdn_service().provider.verify(
        url=url,
        now=int(time.time()) if now is None else now,
        client_ip=client_ip,
        country=country,
        cookies=cookies,
    )


def cdn_signing_failed(*, error: CdnSigningError, subject: str) -> None:
    """Log and count a signing failure of `subject`.

    Raises CdnUnavailable (503) when CDN_FALLBACK=none; otherwise returns and
    the caller moves on to its next URL source.
    """
    service = cdn_service()
    if service.fallback == "none":
        metrics.CDN_SIGNING_FAILURES.labels(service.provider_name, "refused").inc()
        logger.warning("CDN signing failed for %s: %s; refusing", subject, error)
        raise CdnUnavailable(details={"provider": service.provider_name}) from error
    metrics.CDN_SIGNING_FAILURES.labels(service.provider_name, "fallback").inc()
    logger.warning("CDN signing failed for %s: %s; falling back", subject, error)


def cdn_segment_cache_control() -> str:
    """Cache-Control of HLS segments and init files (content-addressed)."""
    return str(settings.CDN_CACHE_CONTROL_SEGMENTS)


def cdn_playlist_cache_control() -> str:
    """Cache-Control of HLS playlists."""
    return str(settings.CDN_CACHE_CONTROL_PLAYLISTS)


def cdn_cache_control(*, name: str) -> str:
    """Cache-Control for an HLS file by its name: playlists, else segments."""
    if name.lower().endswith((".m3u8", ".m3u")):
        return cdn_playlist_cache_control()
    return cdn_segment_cache_control()
