"""CloudFront signed URLs (canned and custom policy) and signed cookies."""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from cdn.errors import CdnSigningError
from cdn.provider import MAX_UNIX_SECONDS, SignedDirectory, SignedUrl, wire_path

if TYPE_CHECKING:
    from botocore.signers import CloudFrontSigner

SIGNED_PARAMS = ("Expires", "Policy", "Signature", "Key-Pair-Id")


def safe_b64encode(data: bytes) -> str:
    """CloudFront's base64: `+`→`-`, `=`→`_`, `/`→`~`."""
    encoded = base64.b64encode(data).decode()
    return encoded.replace("+", "-").replace("=", "_").replace("/", "~")


def safe_b64decode(text: str) -> bytes:
    plain = text.replace("-", "+").replace("_", "=").replace("~", "/")
    return base64.b64decode(plain, validate=True)


def load_private_key(pem: bytes) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the CloudFront private key is not an RSA key")
    return key


def cloudfront_signer(
    *, key_pair_id: str, private_key: rsa.RSAPrivateKey
) -> CloudFrontSigner:
    """botocore's signer with an RSA PKCS#1 v1.5 SHA-1 signature (CloudFront's)."""
    # Imported when a signer is built: botocore costs every process that
    # only imports the CDN helpers a tenth of a second.
    from botocore.signers import CloudFrontSigner

    def sign(message: bytes) -> bytes:
        # SHA-1 is what CloudFront verifies unless Hash-Algorithm is sent,
        # and this botocore never sends it.
        return private_key.sign(message, padding.PKCS1v15(), hashes.SHA1())  # noqa: S303

    return CloudFrontSigner(key_pair_id, sign)


def _moment(unix: int) -> dt.datetime:
    if not 0 < unix <= MAX_UNIX_SECONDS:
        raise ValueError(f"expires must be Unix seconds, not {unix!r}")
    return dt.datetime.fromtimestamp(unix, tz=dt.UTC)


def cloudfront_sign_url(
    *,
    url: str,
    signer: CloudFrontSigner,
    expires: int,
    resource: str | None = None,
    ip: str | None = None,
) -> str:
    """A canned-policy URL, or a custom-policy one for a wildcard or an IP."""
    if resource is None and ip is None:
        return str(signer.generate_presigned_url(url, date_less_than=_moment(expires)))
    policy = signer.build_policy(
        resource or url, date_less_than=_moment(expires), ip_address=ip
    )
    return str(signer.generate_presigned_url(url, policy=policy))


def cloudfront_signed_cookies(
    *, resource: str, signer: CloudFrontSigner, expires: int, ip: str | None = None
) -> dict[str, str]:
    """Custom-policy cookies; `resource` may end in `*` to cover a directory."""
    policy = signer.build_policy(
        resource, date_less_than=_moment(expires), ip_address=ip
    ).encode()
    return {
        "CloudFront-Policy": safe_b64encode(policy),
        "CloudFront-Signature": safe_b64encode(signer.rsa_signer(policy)),
        "CloudFront-Key-Pair-Id": signer.key_id,
    }


def _canned_policy(resource: str, expires: int) -> bytes:
    statement = {
        "Statement": [
            {
                "Resource": resource,
                "Condition": {"DateLessThan": {"AWS:EpochTime": expires}},
            }
        ]
    }
    return json.dumps(statement, separators=(",", ":")).encode()


def _resource_matches(pattern: str, url: str) -> bool:
    regex = "".join(
        ".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern
    )
    return re.fullmatch(regex, url, flags=re.DOTALL) is not None


def _policy_allows(policy: Any, url: str, now: int, ip: str | None) -> bool:
    try:
        (statement,) = policy["Statement"]
        condition = statement["Condition"]
        if not _resource_matches(statement["Resource"], url):
            return False
        if not now < int(condition["DateLessThan"]["AWS:EpochTime"]):
            return False
        if "DateGreaterThan" in condition and not now > int(
            condition["DateGreaterThan"]["AWS:EpochTime"]
        ):
            return False
        if "IpAddress" in condition:
            network = ipaddress.ip_network(condition["IpAddress"]["AWS:SourceIp"])
            if ip is None or ipaddress.ip_address(ip) not in network:
                return False
    except (KeyError, TypeError, ValueError):
        return False
    return True


def _check(
    *,
    url: str,
    signed: Mapping[str, str],
    public_keys: Mapping[str, rsa.RSAPublicKey],
    now: int,
    ip: str | None,
) -> bool:
    public_key = public_keys.get(signed.get("Key-Pair-Id", ""))
    if public_key is None or ("Expires" in signed) == ("Policy" in signed):
        return False
    try:
        signature = safe_b64decode(signed.get("Signature", ""))
        if "Expires" in signed:
            expires = int(signed["Expires"])
            policy_bytes = _canned_policy(url, expires)
        else:
            policy_bytes = safe_b64decode(signed["Policy"])
        policy = json.loads(policy_bytes)
        if not _policy_allows(policy, url, now, ip):
            return False
        public_key.verify(signature, policy_bytes, padding.PKCS1v15(), hashes.SHA1())  # noqa: S303
    except (InvalidSignature, ValueError):
        return False
    return True


def cloudfront_verify_url(
    *,
    url: str,
    public_keys: Mapping[str, rsa.RSAPublicKey],
    now: int,
    ip: str | None = None,
) -> bool:
    """What CloudFront decides for a signed URL (the signing params last)."""
    head, _, query = url.partition("?")
    pairs = query.split("&") if query else []
    signed: dict[str, str] = {}
    while pairs and pairs[-1].partition("=")[0] in SIGNED_PARAMS:
        name, _, value = pairs.pop().partition("=")
        if name in signed:
            return False
        signed[name] = value
    if any(p.partition("=")[0] in SIGNED_PARAMS for p in pairs):
        return False
    resource = f"{head}?{'&'.join(pairs)}" if pairs else head
    return _check(url=resource, signed=signed, public_keys=public_keys, now=now, ip=ip)


def cloudfront_verify_cookies(
    *,
    url: str,
    cookies: Mapping[str, str],
    public_keys: Mapping[str, rsa.RSAPublicKey],
    now: int,
    ip: str | None = None,
) -> bool:
    """What CloudFront decides for a request to `url` carrying signed cookies."""
    signed = {
        name: cookies[f"CloudFront-{name}"]
        for name in SIGNED_PARAMS
        if f"CloudFront-{name}" in cookies
    }
    return _check(url=url, signed=signed, public_keys=public_keys, now=now, ip=ip)


class CloudFrontProvider:
    """A CloudFront distribution trusting a key group with our public key."""

    name = "cloudfront"

    def __init__(
        self,
        *,
        base_url: str,
        key_pair_id: str,
        private_key_pem: bytes,
        previous_public_keys: Mapping[str, rsa.RSAPublicKey] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        try:
            private_key = load_private_key(private_key_pem)
        except ValueError as exc:
            raise CdnSigningError(f"the CloudFront private key: {exc}") from exc
        self.signer = cloudfront_signer(
            key_pair_id=key_pair_id, private_key=private_key
        )
        self.public_keys = {
            **(previous_public_keys or {}),
            key_pair_id: private_key.public_key(),
        }

    def sign_url(
        self, *, path: str, expires_at: int, client_ip: str | None = None
    ) -> SignedUrl:
        try:
            url = cloudfront_sign_url(
                url=self.base_url + wire_path(path),
                signer=self.signer,
                expires=expires_at,
                ip=client_ip,
            )
        except ValueError as exc:
            raise CdnSigningError(f"CloudFront signing failed: {exc}") from exc
        return SignedUrl(url, expires_at)

    def sign_directory(
        self, *, path: str, expires_at: int, client_ip: str | None = None
    ) -> SignedDirectory:
        directory = self.base_url + wire_path(
            path if path.endswith("/") else path + "/"
        )
        # Canned policies cannot wildcard, so a directory needs a custom one.
        resource = directory + "*"
        try:
            cookies = cloudfront_signed_cookies(
                resource=resource,
                signer=self.signer,
                expires=expires_at,
                ip=client_ip,
            )
        except ValueError as exc:
            raise CdnSigningError(f"CloudFront signing failed: {exc}") from exc
        query = "&".join(
            f"{name}={cookies[f'CloudFront-{name}']}"
            for name in ("Policy", "Signature", "Key-Pair-Id")
        )
        return SignedDirectory(
            url=directory, expires_at=expires_at, query=query, cookies=cookies
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
        if "Signature=" in url.partition("?")[2]:
            return cloudfront_verify_url(
                url=url, public_keys=self.public_keys, now=now, ip=client_ip
            )
        return cookies is not None and cloudfront_verify_cookies(
            url=url,
            cookies=cookies,
            public_keys=self.public_keys,
            now=now,
            ip=client_ip,
        )
