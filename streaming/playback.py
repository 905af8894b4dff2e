"""The HLS master playlist URL: a CDN directory token, else an origin path token."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from django.conf import settings

from cdn.origin import audience_scope, origin_token
from cdn.services import (
    CdnSigningError,
    cdn_is_enabled,
    cdn_signed_directory,
    cdn_signing_failed,
)
from streaming.models import HlsPackage
from streaming.playlists import MASTER_NAME
from tracks.models import StorageBackend
from veza import metrics

logger = logging.getLogger(__name__)

# The origin's URL layout. The token sits in the path, before the package
# directory, so the relative URIs of the playlists (`64k/index.m3u8`,
# `init.mp4`, `seg_00001.m4s`) resolve to URLs that carry it too.
ORIGIN_PREFIX = "/origin/hls/"


@dataclass(frozen=True)
class HlsMasterUrl:
    """Where a player opens a package, and until when.

    `cookies` (CloudFront) authorise the rest of the package directory: the
    API sets them on its response for `cookie_path` and `cookie_domain`.
    """

    url: str
    expires_at: int
    source: Literal["cdn", "origin"]
    cookies: Mapping[str, str] = field(default_factory=dict)
    cookie_path: str = "/"
    cookie_domain: str | None = None


def hls_token_scope(content_hash: str) -> str:
    """What an origin directory token signs: every file of one package."""
    return f"hls/{content_hash}/"


def hls_origin_scope(content_hash: str, *, shared: bool) -> str:
    """What an origin directory token signs: the package, and whether its
    track was shared (`cdn.origin.audience_scope`)."""
    return audience_scope(hls_token_scope(content_hash), shared=shared)


def hls_origin_directory(*, content_hash: str, expires: int, shared: bool) -> str:
    """The origin path of a package's directory, token included (ends in /)."""
    token = origin_token(hls_origin_scope(content_hash, shared=shared), expires)
    return f"{ORIGIN_PREFIX}{expires}/{token}/{content_hash}/"


def hls_master_url(
    *, package: HlsPackage, shared: bool, origin_base: str
) -> HlsMasterUrl:
    """The master playlist URL of a ready package, valid for HLS_URL_TTL, or
    CDN_TOKEN_TTL if shorter for a CDN URL (which nothing can recall; the
    player asks for a new one when it expires).

    Never an S3 presigned URL: its signature is in the query, which players
    drop when they resolve the playlists' relative URIs. Access was checked
    before this is called.
    """
    expires_at = int(time.time()) + settings.HLS_URL_TTL
    content_hash = package.content_hash
    # The CDN pulls from the bucket, so it serves only packages on S3; a
    # package still on local disk (during a migration) plays from the origin.
    if cdn_is_enabled() and package.storage_backend == StorageBackend.S3:
        expires_at = int(time.time()) + min(
            settings.HLS_URL_TTL, settings.CDN_TOKEN_TTL
        )
        try:
            signed = cdn_signed_directory(
                path=f"/{hls_token_scope(content_hash)}", expires_at=expires_at
            )
        except CdnSigningError as exc:
            # Raises CdnUnavailable (503) when CDN_FALLBACK=none.
            cdn_signing_failed(error=exc, subject=f"HLS package {content_hash}")
        else:
            metrics.PLAYBACK_URLS.labels("hls", "cdn").inc()
            return HlsMasterUrl(
                url=signed.file_url(MASTER_NAME),
                expires_at=signed.expires_at,
                source="cdn",
                cookies=signed.cookies,
                cookie_path=urlsplit(signed.url).path,
                cookie_domain=cookie_domain(
                    api_host=urlsplit(origin_base).hostname or "",
                    cdn_host=urlsplit(signed.url).hostname or "",
                ),
            )
    directory = hls_origin_directory(
        content_hash=content_hash, expires=expires_at, shared=shared
    )
    metrics.PLAYBACK_URLS.labels("hls", "origin").inc()
    return HlsMasterUrl(
        url=f"{origin_base.rstrip('/')}{directory}{MASTER_NAME}",
        expires_at=expires_at,
        source="origin",
    )


def cookie_domain(*, api_host: str, cdn_host: str) -> str | None:
    """The Domain of the CDN cookies: the parent domain the API and CDN share.

    The cookies come back on the API's response, but the browser must send
    them to the CDN host. That works only when the CDN is a CNAME under a
    domain the API is also under (api.veza.example and cdn.veza.example share
    veza.example). With no shared parent of two labels or more (a bare
    *.cloudfront.net host), None: host-only cookies, which reach the CDN only
    if it is the API's own host; the master URL itself still carries the
    signature in its query, but its segments would be refused.
    """
    api_labels = api_host.lower().rstrip(".").split(".")
    cdn_labels = cdn_host.lower().rstrip(".").split(".")
    shared: list[str] = []
    for api_label, cdn_label in zip(
        reversed(api_labels), reversed(cdn_labels), strict=False
    ):
        if api_label != cdn_label or not api_label:
            break
        shared.insert(0, api_label)
    if api_labels == cdn_labels:
        return None  # the same host: host-only cookies already reach it
    if len(shared) < 2:
        logger.warning(
            "CloudFront cookies for %s cannot reach %s: no shared parent domain",
            api_host,
            cdn_host,
        )
        return None
    return ".".join(shared)
