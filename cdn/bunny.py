"""Bunny.net token authentication: the HMAC (HS256-) and legacy SHA-256 schemes."""

from __future__ import annotations

import binascii
import hashlib
import hmac
import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from cdn.errors import CdnSigningError
from cdn.provider import MAX_UNIX_SECONDS, SignedDirectory, SignedUrl, wire_path

Scheme = Literal["hmac", "sha256"]
SCHEMES: tuple[Scheme, ...] = ("hmac", "sha256")
PATH_TOKEN = "/bcdn_token="  # noqa: S105 (a URL marker, not a secret)
RESERVED = ("token", "expires")
# Values are mostly plain; skipping quote() keeps signing near the bare HMAC.
_PLAIN_VALUE = re.compile(r"[A-Za-z0-9._~-]*\Z")


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _b64url(digest: bytes) -> str:
    # binascii directly: base64.urlsafe_b64encode costs as much as the HMAC.
    encoded = binascii.b2a_base64(digest, newline=False).translate(_URLSAFE)
    return encoded.rstrip(b"=").decode()


def _packed_ip(ip: str) -> bytes:
    address = ipaddress.ip_address(ip)
    if address.version == 4:
        return address.packed
    # IPv6 clients are bound by their /64: the interface half changes often.
    return address.packed[:8] + bytes(8)


def _encode_value(value: str) -> str:
    # Bunny wants "/" and "," encoded too (%2F, %2C), spaces as %20.
    return value if _PLAIN_VALUE.match(value) else quote(value, safe="")


def bunny_token(
    *,
    key: str,
    scheme: Scheme,
    signature_path: str,
    expires: int,
    params: Mapping[str, str],
    ip: str | None = None,
) -> str:
    """The token over the decoded path, expiry, optional IP and sorted params."""
    # str order is code point order, which is UTF-8 byte order.
    signing_data = "&".join([f"{k}={params[k]}" for k in sorted(params)])
    if scheme == "hmac":
        message = f"{signature_path}{expires}".encode()
        if ip:
            message += _packed_ip(ip)
        message += signing_data.encode()
        digest = hmac.digest(key.encode(), message, "sha256")
        return ("HS256-1-" if ip else "HS256-") + _b64url(digest)
    if scheme == "sha256":
        text = f"{key}{signature_path}{expires}{ip or ''}{signing_data}"
        return _b64url(hashlib.sha256(text.encode()).digest())
    raise ValueError(f"unknown Bunny token scheme {scheme!r}")


def bunny_sign_url(
    *,
    base_url: str,
    path: str,
    key: str,
    expires: int,
    scheme: Scheme = "hmac",
    ip: str | None = None,
    token_path: str | None = None,
    countries: Iterable[str] = (),
    countries_blocked: Iterable[str] = (),
    speed_limit: int = 0,
    params: Mapping[str, str] | None = None,
    ignore_params: bool = False,
    path_form: bool = False,
) -> str:
    """A signed URL for `path` (decoded, starting with /) under `base_url`.

    `params` are extra query parameters, decoded; they are signed unless
    `ignore_params`. `path_form` puts the token in the path (`/bcdn_token=`),
    which relative URLs in HLS playlists inherit.
    """
    if not key:
        raise ValueError("the Bunny security key is empty")
    if not 0 < expires <= MAX_UNIX_SECONDS:
        raise ValueError(f"expires must be Unix seconds, not {expires!r}")
    if not path.startswith("/"):
        raise ValueError(f"path must start with /: {path!r}")
    parameters: dict[str, str] = {}
    if ignore_params:
        parameters["token_ignore_params"] = "true"  # noqa: S105
    else:
        for name, value in (params or {}).items():
            if name in RESERVED:
                raise ValueError(f"{name!r} cannot be a signed parameter")
            parameters[name] = value
        for name, value in (
            ("token_countries", ",".join(countries)),
            ("token_countries_blocked", ",".join(countries_blocked)),
            ("limit", str(speed_limit) if speed_limit > 0 else ""),
        ):
            if value:
                if name in parameters:
                    raise ValueError(f"duplicate parameter {name!r}")
                parameters[name] = value
    if token_path:
        parameters["token_path"] = token_path
    token = bunny_token(
        key=key,
        scheme=scheme,
        signature_path=token_path or path,
        expires=expires,
        params=parameters,
        ip=ip,
    )
    tail = "".join(
        [
            f"&{_encode_value(k)}={_encode_value(parameters[k])}"
            for k in sorted(parameters)
        ]
    )
    base = base_url.rstrip("/")
    if path_form:
        return f"{base}{PATH_TOKEN}{token}{tail}&expires={expires}{wire_path(path)}"
    return f"{base}{wire_path(path)}?token={token}{tail}&expires={expires}"


def bunny_verify_url(
    *,
    url: str,
    keys: Sequence[str],
    scheme: Scheme,
    now: int,
    ip: str | None = None,
    country: str | None = None,
) -> bool:
    """What a Bunny edge with token authentication decides for `url`.

    `ip` is the client address; for the legacy scheme pass it only when the
    zone validates IPs (the token does not say whether it is bound).
    """
    parts = urlsplit(url)
    raw_path, query = parts.path, parts.query
    if raw_path.startswith(PATH_TOKEN):
        end = raw_path.find("/", len(PATH_TOKEN))
        if end < 0:
            return False
        token_query = "token=" + raw_path[len(PATH_TOKEN) : end]
        query = f"{token_query}&{query}" if query else token_query
        raw_path = raw_path[end:]
    params: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name in params:
            return False
        params[name] = value
    token = params.pop("token", "")
    expires = params.pop("expires", "")
    if not token or not (expires.isascii() and expires.isdigit()):
        return False
    if int(expires) < now:
        return False
    path = unquote(raw_path)
    token_path = params.get("token_path")
    if token_path is not None and not path.startswith(token_path):
        return False
    allowed = params.get("token_countries")
    if allowed is not None and country not in allowed.split(","):
        return False
    blocked = params.get("token_countries_blocked")
    if blocked is not None and country in blocked.split(","):
        return False
    if params.get("token_ignore_params") == "true":
        params = {
            k: v
            for k, v in params.items()
            if k in ("token_ignore_params", "token_path")
        }
    if token.startswith("HS256-"):
        # An unbound token's base64 may itself start with "1-"; the length
        # tells them apart (43 base64url characters after the prefix).
        bound = token.startswith("HS256-1-") and len(token) == len("HS256-1-") + 43
        if scheme != "hmac" or (bound and not ip):
            return False
        token_ip = ip if bound else None
    else:
        if scheme != "sha256":
            return False
        token_ip = ip
    for key in keys:
        try:
            expected = bunny_token(
                key=key,
                scheme=scheme,
                signature_path=token_path or path,
                expires=int(expires),
                params=params,
                ip=token_ip,
            )
        except ValueError:
            return False
        if hmac.compare_digest(expected.encode(), token.encode()):
            return True
    return False


class BunnyProvider:
    """Bunny pull zone with token authentication."""

    name = "bunny"

    def __init__(
        self,
        *,
        base_url: str,
        key: str,
        previous_key: str = "",
        scheme: Scheme = "hmac",
        countries: Sequence[str] = (),
        countries_blocked: Sequence[str] = (),
        speed_limit: int = 0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.key = key
        self.keys = [k for k in (key, previous_key) if k]
        self.scheme = scheme
        self.countries = tuple(countries)
        self.countries_blocked = tuple(countries_blocked)
        self.speed_limit = speed_limit
        # The zone-wide parameters are the same for every URL: sign and
        # encode them once, so a file URL costs little more than its HMAC.
        static = {
            name: value
            for name, value in (
                ("limit", str(speed_limit) if speed_limit > 0 else ""),
                ("token_countries", ",".join(self.countries)),
                ("token_countries_blocked", ",".join(self.countries_blocked)),
            )
            if value
        }
        self._signing_data = "&".join(f"{k}={v}" for k, v in sorted(static.items()))
        self._tail = "".join(
            f"&{k}={_encode_value(v)}" for k, v in sorted(static.items())
        )
        self._key_bytes = key.encode()

    def _sign(
        self, *, path: str, expires_at: int, client_ip: str | None, directory: bool
    ) -> str:
        try:
            return bunny_sign_url(
                base_url=self.base_url,
                path=path,
                key=self.key,
                expires=expires_at,
                scheme=self.scheme,
                ip=client_ip,
                token_path=path if directory else None,
                countries=self.countries,
                countries_blocked=self.countries_blocked,
                speed_limit=self.speed_limit,
                path_form=directory,
            )
        except ValueError as exc:
            raise CdnSigningError(f"Bunny signing failed: {exc}") from exc

    def sign_url(
        self, *, path: str, expires_at: int, client_ip: str | None = None
    ) -> SignedUrl:
        if client_ip or not self.key or not path.startswith("/"):
            url = self._sign(
                path=path, expires_at=expires_at, client_ip=client_ip, directory=False
            )
            return SignedUrl(url, expires_at)
        if not 0 < expires_at <= MAX_UNIX_SECONDS:
            raise CdnSigningError(f"expires must be Unix seconds, not {expires_at!r}")
        # Same token as bunny_token() with the zone-wide parameters only.
        message = f"{path}{expires_at}{self._signing_data}".encode()
        if self.scheme == "hmac":
            token = "HS256-" + _b64url(hmac.digest(self._key_bytes, message, "sha256"))
        else:
            token = _b64url(hashlib.sha256(self._key_bytes + message).digest())
        return SignedUrl(
            f"{self.base_url}{wire_path(path)}?token={token}{self._tail}"
            f"&expires={expires_at}",
            expires_at,
        )

    def sign_directory(
        self, *, path: str, expires_at: int, client_ip: str | None = None
    ) -> SignedDirectory:
        directory = path if path.endswith("/") else path + "/"
        url = self._sign(
            path=directory, expires_at=expires_at, client_ip=client_ip, directory=True
        )
        return SignedDirectory(url=url, expires_at=expires_at)

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
        return bunny_verify_url(
            url=url,
            keys=self.keys,
            scheme=self.scheme,
            now=now,
            ip=client_ip,
            country=country,
        )
