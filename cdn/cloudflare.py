"""Cloudflare WAF token authentication (`is_timed_hmac_valid_v0`)."""

from __future__ import annotations

import binascii
import hmac
import re
import time
from collections.abc import Mapping, Sequence
from typing import Literal
from urllib.parse import quote, unquote, urlsplit

from cdn.errors import CdnSigningError
from cdn.provider import SignedDirectory, SignedUrl, wire_path

# "base64": standard base64, URL-encoded (the rule has no flags);
# "urlsafe": base64url without padding (the rule passes the "s" flag).
Encoding = Literal["base64", "urlsafe"]
ENCODINGS: tuple[Encoding, ...] = ("base64", "urlsafe")
# The rule's MessageMAC regex needs a 10-digit issue time.
MIN_TS, MAX_TS = 1_000_000_000, 9_999_999_999
_VERIFY = re.compile(r"(?:(.*)&)?verify=(\d{10})-(.+)", re.DOTALL)


def cloudflare_mac(*, key: str, message: str, ts: int, encoding: Encoding) -> str:
    """The MAC over message + issue time, encoded as it goes into the URL."""
    digest = hmac.digest(key.encode(), f"{message}{ts}".encode(), "sha256")
    return _encode_mac(digest, encoding)


def _encode_mac(digest: bytes, encoding: Encoding) -> str:
    # binascii and str.replace: base64's and quote()'s wrappers cost more
    # than the HMAC itself.
    encoded = binascii.b2a_base64(digest, newline=False).decode()
    if encoding == "urlsafe":
        return encoded.rstrip("=").replace("+", "-").replace("/", "_")
    return encoded.replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")


def _message(path: str, query: str, prefix_length: int | None) -> str:
    # The separator ("?verify=" or "&verify=", 8 characters) is not signed.
    scope = path[:prefix_length] if prefix_length else path
    return f"{scope}?{query}" if query else scope


def cloudflare_sign_url(
    *,
    base_url: str,
    path: str,
    key: str,
    ts: int,
    query: str = "",
    encoding: Encoding = "base64",
    prefix_length: int | None = None,
) -> str:
    """`path` (decoded) with `verify=<ts>-<mac>` as the last parameter.

    The MAC covers the path as sent on the wire (percent-encoded), any
    `query` before it, or only the first `prefix_length` characters of the
    path for a directory rule.
    """
    if not key:
        raise ValueError("the Cloudflare token secret is empty")
    if not MIN_TS <= ts <= MAX_TS:
        raise ValueError(f"the issue time must be 10-digit Unix seconds: {ts!r}")
    if not path.startswith("/"):
        raise ValueError(f"path must start with /: {path!r}")
    encoded = wire_path(path)
    if prefix_length is not None and len(encoded) < prefix_length:
        raise ValueError(f"{path!r} is shorter than the {prefix_length}-char prefix")
    mac = cloudflare_mac(
        key=key,
        message=_message(encoded, query, prefix_length),
        ts=ts,
        encoding=encoding,
    )
    head = f"{base_url.rstrip('/')}{encoded}"
    if query:
        return f"{head}?{query}&verify={ts}-{mac}"
    return f"{head}?verify={ts}-{mac}"


def cloudflare_verify_url(
    *,
    url: str,
    keys: Sequence[str],
    ttl: int,
    now: int,
    encoding: Encoding = "base64",
    prefix_length: int | None = None,
) -> bool:
    """What the WAF rule decides: `verify` last, MAC matches, issued < ttl ago."""
    parts = urlsplit(url)
    match = _VERIFY.fullmatch(parts.query)
    if match is None:
        return False
    query, ts_text, mac = match.group(1) or "", match.group(2), match.group(3)
    ts = int(ts_text)
    if not ts <= now < ts + ttl:
        return False
    if prefix_length is not None and len(parts.path) < prefix_length:
        return False
    message = _message(parts.path, query, prefix_length)
    if encoding == "base64":
        # Compare the decoded form: clients may or may not re-encode "=".
        mac = quote(unquote(mac), safe="")
    for key in keys:
        expected = cloudflare_mac(key=key, message=message, ts=ts, encoding=encoding)
        if hmac.compare_digest(expected.encode(), mac.encode()):
            return True
    return False


class CloudflareProvider:
    """A Cloudflare zone whose WAF rule checks `is_timed_hmac_valid_v0`.

    The rule's TTL is fixed, so a URL expires at issue time + `ttl`; to end
    at the caller's expiry the issue time is set back when that is earlier.
    """

    name = "cloudflare"

    def __init__(
        self,
        *,
        base_url: str,
        key: str,
        previous_key: str = "",
        ttl: int,
        encoding: Encoding = "base64",
        prefix_length: int = 0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.key = key
        self.keys = [k for k in (key, previous_key) if k]
        self.ttl = ttl
        self.encoding: Encoding = encoding
        self.prefix_length = prefix_length
        self._key_bytes = key.encode()

    def _issue_time(self, expires_at: int) -> int:
        return min(int(time.time()), expires_at - self.ttl)

    def sign_url(
        self, *, path: str, expires_at: int, client_ip: str | None = None
    ) -> SignedUrl:
        ts = self._issue_time(expires_at)
        if not (self.key and MIN_TS <= ts <= MAX_TS and path.startswith("/")):
            try:
                cloudflare_sign_url(
                    base_url=self.base_url, path=path, key=self.key, ts=ts
                )
            except ValueError as exc:
                raise CdnSigningError(f"Cloudflare signing failed: {exc}") from exc
        # Same URL as cloudflare_sign_url(), without re-checking per call.
        encoded = wire_path(path)
        digest = hmac.digest(self._key_bytes, f"{encoded}{ts}".encode(), "sha256")
        mac = _encode_mac(digest, self.encoding)
        return SignedUrl(f"{self.base_url}{encoded}?verify={ts}-{mac}", ts + self.ttl)

    def sign_directory(
        self, *, path: str, expires_at: int, client_ip: str | None = None
    ) -> SignedDirectory:
        directory = path if path.endswith("/") else path + "/"
        wire = wire_path(directory)
        if len(wire) != self.prefix_length:
            raise CdnSigningError(
                f"the WAF rule checks a fixed {self.prefix_length}-character "
                f"prefix; {directory!r} has {len(wire)}"
            )
        ts = self._issue_time(expires_at)
        try:
            mac = cloudflare_mac(
                key=self.key, message=wire, ts=ts, encoding=self.encoding
            )
        except ValueError as exc:
            raise CdnSigningError(f"Cloudflare signing failed: {exc}") from exc
        return SignedDirectory(
            url=f"{self.base_url}{wire}",
            expires_at=ts + self.ttl,
            query=f"verify={ts}-{mac}",
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
        if not url.startswith(self.base_url + "/"):
            return False

        def check(prefix_length: int | None) -> bool:
            return cloudflare_verify_url(
                url=url,
                keys=self.keys,
                ttl=self.ttl,
                now=now,
                encoding=self.encoding,
                prefix_length=prefix_length,
            )

        # A second rule scopes HLS directories by their fixed-length prefix.
        return check(None) or (bool(self.prefix_length) and check(self.prefix_length))
