"""The small interface every CDN provider module implements."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol
from urllib.parse import quote

# Expiry times are Unix seconds; anything past this is milliseconds by mistake
# (year 2286), which every edge rejects.
MAX_UNIX_SECONDS = 9_999_999_999


# Most object keys are hex names; skipping quote() for them keeps signing
# close to the cost of the bare HMAC.
_PLAIN_PATH = re.compile(r"[A-Za-z0-9/._~-]*\Z")


def wire_path(path: str) -> str:
    """`path` (decoded) as it is sent on the wire, percent-encoded."""
    return path if _PLAIN_PATH.match(path) else quote(path, safe="/")


class SignedUrl(NamedTuple):
    # A tuple: built once per playback request, it must cost next to nothing.
    url: str
    expires_at: int


@dataclass(frozen=True)
class SignedDirectory:
    """One token for every object under `url` (a directory ending in /).

    A file's URL is `url` + its relative name + `query` (when set); players
    resolving relative URIs against a playlist keep the token only when it is
    in the path (Bunny) or in `cookies` (CloudFront).
    """

    url: str
    expires_at: int
    query: str = ""
    cookies: Mapping[str, str] = field(default_factory=dict)

    def file_url(self, name: str) -> str:
        url = self.url + wire_path(name)
        return f"{url}?{self.query}" if self.query else url


class CdnProvider(Protocol):
    name: str

    def sign_url(
        self, *, path: str, expires_at: int, client_ip: str | None = None
    ) -> SignedUrl: ...

    def sign_directory(
        self, *, path: str, expires_at: int, client_ip: str | None = None
    ) -> SignedDirectory: ...

    def verify(
        self,
        *,
        url: str,
        now: int,
        client_ip: str | None = None,
        country: str | None = None,
        cookies: Mapping[str, str] | None = None,
    ) -> bool:
        """What the edge decides for a request to `url`: serve or 403."""
        ...
