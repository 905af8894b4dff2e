"""The CDN interface the other apps call: sign a path, or say it cannot."""

from __future__ import annotations

from dataclasses import dataclass


class CdnSigningError(Exception):
    """Signing failed; callers fall back to the next URL source."""


@dataclass(frozen=True)
class SignedUrl:
    url: str
    expires_at: int


def cdn_is_enabled() -> bool:
    """Whether playback URLs should come from the CDN.

    No provider is wired yet (the CDN issue adds Bunny, Cloudflare,
    CloudFront and R2 behind this interface), so the CDN is off.
    """
    return False


def cdn_signed_url(*, path: str, expires_at: int) -> SignedUrl:
    """A CDN URL for the object at `path`, signed until `expires_at`."""
    raise CdnSigningError("no CDN provider is configured")
