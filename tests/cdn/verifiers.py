"""What each CDN edge decides for a request: reference code, not the project's.

Written from the published specs (shared/reference/cdn-hls.md: Bunny token
authentication, Cloudflare `is_timed_hmac_valid_v0`, CloudFront signed URLs
and cookies) without importing `cdn`: the edge stand-ins in tests/cdn/edge.py
check with these, so a mistake shared by the project's signer and its own
`verify()` cannot pass unseen. Each function takes the request as the edge
receives it (the raw request target, cookies, the client address) and
answers the path to fetch from the origin, or None for 403.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import unquote

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa


@dataclass(frozen=True)
class EdgeRequest:
    """A request as it reaches the edge."""

    target: str  # the raw request target: path and query, percent-encoded
    base_url: str  # scheme://host[:port] of the edge, no trailing slash
    now: int
    cookies: Mapping[str, str] = field(default_factory=dict)
    client_ip: str | None = None
    country: str | None = None


class Verifier(Protocol):
    @property
    def name(self) -> str: ...

    def origin_path(self, request: EdgeRequest) -> str | None:
        """The path (percent-encoded) the edge fetches from its origin, or
        None when it refuses the request (403)."""
        ...


def _pairs(query: str) -> list[tuple[str, str]]:
    # Percent-decoding only: "+" stays "+" (Bunny's and CloudFront's
    # base64 alphabets never use it, and a space is always %20).
    return [
        (unquote(name), unquote(value))
        for name, _, value in (part.partition("=") for part in query.split("&"))
        if name
    ]


def _b64url(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


# Bunny.net token authentication


BUNNY_PATH_TOKEN = "/bcdn_token="


def _bunny_ip_bytes(ip: str) -> bytes:
    address = ipaddress.ip_address(ip)
    # IPv6 clients are bound by their /64 network.
    return address.packed if address.version == 4 else address.packed[:8] + bytes(8)


def bunny_origin_path(
    request: EdgeRequest, *, keys: Sequence[str], validate_ip: bool = False
) -> str | None:
    """A Bunny pull zone with token authentication (both advanced schemes:
    `HS256-` HMAC and the legacy SHA-256 token, told apart by their shape).

    The token is in the query (`?token=…&expires=…`) or in the first path
    segment (`/bcdn_token=…&expires=…/path`), which the edge strips before
    it asks the origin. `validate_ip` is the zone's "Token IP validation"
    for legacy tokens; HMAC tokens say themselves whether they are bound.
    """
    path, _, query = request.target.partition("?")
    pairs = _pairs(query) if query else []
    if path.startswith(BUNNY_PATH_TOKEN):
        segment, slash, rest = path[1:].partition("/")
        if not slash:
            return None
        path = "/" + rest
        pairs = [
            ("token" if name == "bcdn_token" else name, value)
            for name, value in _pairs(segment)
        ] + pairs
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            return None
        params[name] = value
    token = params.pop("token", "")
    expires = params.pop("expires", "")
    if not token or not re.fullmatch(r"[0-9]{1,10}", expires):
        return None
    if request.now > int(expires):
        return None
    decoded_path = unquote(path)
    token_path = params.get("token_path")
    if token_path is not None and not decoded_path.startswith(token_path):
        return None
    allowed = params.get("token_countries")
    if allowed is not None and request.country not in allowed.split(","):
        return None
    blocked = params.get("token_countries_blocked")
    if blocked is not None and request.country in blocked.split(","):
        return None
    if params.get("token_ignore_params") == "true":
        params = {
            k: v
            for k, v in params.items()
            if k in ("token_ignore_params", "token_path")
        }
    signing_data = "&".join(
        f"{name}={params[name]}" for name in sorted(params, key=str.encode)
    )
    signature_path = token_path if token_path is not None else decoded_path
    for key in keys:
        if _bunny_token_matches(
            token=token,
            key=key,
            signature_path=signature_path,
            expires=expires,
            signing_data=signing_data,
            client_ip=request.client_ip,
            validate_ip=validate_ip,
        ):
            return path
    return None


def _bunny_token_matches(
    *,
    token: str,
    key: str,
    signature_path: str,
    expires: str,
    signing_data: str,
    client_ip: str | None,
    validate_ip: bool,
) -> bool:
    if token.startswith("HS256-"):
        mac = token.removeprefix("HS256-")
        # "HS256-1-" marks an IP-bound token; an unbound MAC is 43 characters
        # and may itself begin with "1-".
        bound = mac.startswith("1-") and len(mac) == 45
        if bound:
            if client_ip is None:
                return False
            mac = mac[2:]
        message = (signature_path + expires).encode()
        if bound and client_ip is not None:
            message += _bunny_ip_bytes(client_ip)
        message += signing_data.encode()
        expected = _b64url(hmac.digest(key.encode(), message, "sha256"))
        return hmac.compare_digest(expected, mac)
    ip = client_ip if validate_ip and client_ip else ""
    text = f"{key}{signature_path}{expires}{ip}{signing_data}"
    expected = _b64url(hashlib.sha256(text.encode()).digest())
    return hmac.compare_digest(expected, token)


@dataclass(frozen=True)
class BunnyEdge:
    keys: Sequence[str]
    validate_ip: bool = False
    name: str = "bunny"

    def origin_path(self, request: EdgeRequest) -> str | None:
        return bunny_origin_path(request, keys=self.keys, validate_ip=self.validate_ip)


# Cloudflare WAF: is_timed_hmac_valid_v0


# The function's MessageMAC format: message, separator, 10-digit issue time,
# "-", then the MAC (at least 43 characters). Greedy, as Cloudflare's is.
_MESSAGE_MAC = re.compile(r"(.+)(\d{10})-(.{43,})", re.DOTALL)


def cloudflare_timed_hmac_valid(
    *,
    key: str,
    message_mac: str,
    ttl: int,
    now: int,
    separator_length: int = 0,
    urlsafe: bool = False,
) -> bool:
    """`is_timed_hmac_valid_v0(key, message_mac, ttl, now, separator_length,
    flags)`: the MAC covers the message (without the separator) and the
    issue time, and the issue time is less than `ttl` seconds old."""
    match = _MESSAGE_MAC.fullmatch(message_mac)
    if match is None:
        return False
    head, issued, mac = match.groups()
    if len(head) <= separator_length:
        return False
    message = head[: len(head) - separator_length] if separator_length else head
    if not 0 <= now - int(issued) < ttl:
        return False
    try:
        if urlsafe:
            given = base64.urlsafe_b64decode(mac + "=" * (-len(mac) % 4))
        else:
            given = base64.b64decode(unquote(mac), validate=True)
    except ValueError:
        return False
    expected = hmac.digest(key.encode(), (message + issued).encode(), "sha256")
    return hmac.compare_digest(expected, given)


@dataclass(frozen=True)
class CloudflareEdge:
    """A zone with the two WAF rules of docs/OPERATIONS.md ("Cloudflare"):
    the whole URI for files, and for paths under `prefix_path` the MAC over
    `concat(substring(http.request.uri.path, 0, N), "?", http.request.uri.query)`.
    Every secret in `keys` is a rule (rotation keeps two)."""

    keys: Sequence[str]
    ttl: int
    prefix_length: int = 70
    prefix_path: str = "/hls/"
    urlsafe: bool = False
    name: str = "cloudflare"

    def origin_path(self, request: EdgeRequest) -> str | None:
        path, _, query = request.target.partition("?")
        if path.startswith(self.prefix_path):
            message_mac = f"{path[: self.prefix_length]}?{query}"
        else:
            message_mac = request.target
        for key in self.keys:
            if cloudflare_timed_hmac_valid(
                key=key,
                message_mac=message_mac,
                ttl=self.ttl,
                now=request.now,
                separator_length=len("?verify="),
                urlsafe=self.urlsafe,
            ):
                return path
        return None


# CloudFront: signed URLs and signed cookies


_CLOUDFRONT_SIGNED = ("Expires", "Policy", "Signature", "Key-Pair-Id")


def _cloudfront_b64decode(text: str) -> bytes:
    plain = text.replace("-", "+").replace("_", "=").replace("~", "/")
    return base64.b64decode(plain, validate=True)


def _wildcard(pattern: str, text: str) -> bool:
    regex = "".join(
        ".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern
    )
    return re.fullmatch(regex, text, re.DOTALL) is not None


def _epoch(condition: Mapping[str, Any], name: str) -> int | None:
    value = condition.get(name, {}).get("AWS:EpochTime")
    return None if value is None else int(value)


def _statement_allows(
    statement: Mapping[str, Any], url: str, now: int, ip: str | None
) -> bool:
    condition = statement.get("Condition", {})
    less_than = _epoch(condition, "DateLessThan")
    if less_than is None or not now < less_than:
        return False
    greater_than = _epoch(condition, "DateGreaterThan")
    if greater_than is not None and not now > greater_than:
        return False
    source = condition.get("IpAddress", {}).get("AWS:SourceIp")
    if source is not None and (
        ip is None or ipaddress.ip_address(ip) not in ipaddress.ip_network(source)
    ):
        return False
    resource = statement.get("Resource")
    return isinstance(resource, str) and _wildcard(resource, url)


def cloudfront_allows(
    *,
    url: str,
    signed: Mapping[str, str],
    public_keys: Mapping[str, rsa.RSAPublicKey],
    now: int,
    ip: str | None = None,
) -> bool:
    """A CloudFront behaviour restricted to a trusted key group: `signed` is
    Expires or Policy, Signature, Key-Pair-Id (from the query or from the
    `CloudFront-*` cookies); `url` is what the policy's Resource must match."""
    public_key = public_keys.get(signed.get("Key-Pair-Id", ""))
    if public_key is None or ("Expires" in signed) == ("Policy" in signed):
        return False
    try:
        signature = _cloudfront_b64decode(signed.get("Signature", ""))
        if "Expires" in signed:
            policy_bytes = json.dumps(
                {
                    "Statement": [
                        {
                            "Resource": url,
                            "Condition": {
                                "DateLessThan": {
                                    "AWS:EpochTime": int(signed["Expires"])
                                }
                            },
                        }
                    ]
                },
                separators=(",", ":"),
            ).encode()
        else:
            policy_bytes = _cloudfront_b64decode(signed["Policy"])
        public_key.verify(signature, policy_bytes, padding.PKCS1v15(), hashes.SHA1())  # noqa: S303
        statements = json.loads(policy_bytes)["Statement"]
        return any(_statement_allows(s, url, now, ip) for s in statements)
    except (InvalidSignature, ValueError, KeyError, TypeError):
        return False


@dataclass(frozen=True)
class CloudFrontEdge:
    """A distribution whose behaviour trusts a key group (`public_keys`, by
    public key ID). Signing parameters in the query win over cookies."""

    public_keys: Mapping[str, rsa.RSAPublicKey]
    name: str = "cloudfront"

    def origin_path(self, request: EdgeRequest) -> str | None:
        path, _, query = request.target.partition("?")
        pairs = query.split("&") if query else []
        in_query = {
            name: value
            for name, _, value in (p.partition("=") for p in pairs)
            if name in _CLOUDFRONT_SIGNED
        }
        if "Signature" in in_query:
            rest = [p for p in pairs if p.partition("=")[0] not in _CLOUDFRONT_SIGNED]
            resource = request.base_url + path + ("?" + "&".join(rest) if rest else "")
            signed: Mapping[str, str] = in_query
        else:
            resource = request.base_url + request.target
            signed = {
                name: request.cookies[f"CloudFront-{name}"]
                for name in _CLOUDFRONT_SIGNED
                if f"CloudFront-{name}" in request.cookies
            }
        allowed = cloudfront_allows(
            url=resource,
            signed=signed,
            public_keys=self.public_keys,
            now=request.now,
            ip=request.client_ip,
        )
        return path if allowed else None
