"""Property tests: sign then verify succeeds; any tampering or expiry fails."""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
import re
import time
from pathlib import Path
from urllib.parse import quote

from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from cdn.bunny import bunny_sign_url, bunny_verify_url
from cdn.cloudflare import cloudflare_sign_url, cloudflare_verify_url
from cdn.cloudfront import (
    cloudfront_sign_url,
    cloudfront_signed_cookies,
    cloudfront_signer,
    cloudfront_verify_cookies,
    cloudfront_verify_url,
    load_private_key,
)
from cdn.r2 import sigv4_presign, sigv4_verify_url

NOW = int(time.time())
BASE = "https://cdn.veza.example"
RESERVED = {
    "token",
    "expires",
    "token_path",
    "token_countries",
    "token_countries_blocked",
    "token_ignore_params",
    "limit",
}

keys = st.text(min_size=1, max_size=64)
# Any printable text, with spaces and non-ASCII; "/" separates segments.
segment = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=20
)
paths = st.lists(segment, min_size=1, max_size=3).map(lambda s: "/" + "/".join(s))
lifetimes = st.integers(1, 10**6)
ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(str)
ips = st.one_of(ipv4, ipv6)
param_names = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=10
).filter(lambda n: n not in RESERVED)
params = st.dictionaries(param_names, st.text(max_size=20), max_size=3)
schemes = st.sampled_from(["hmac", "sha256"])


def flip(text: str, index: int) -> str:
    """`text` with one character changed, never to a same-byte escape."""
    i = index % len(text)
    replacement = "0" if text[i].isalpha() else "A"
    return text[:i] + replacement + text[i + 1 :]


def other_ip(ip: str) -> str:
    address = ipaddress.ip_address(ip)
    # A different IPv4 address, or a different IPv6 /64.
    step = 1 if address.version == 4 else 1 << 64
    return str(ipaddress.ip_address((int(address) + step) % (2**address.max_prefixlen)))


def bunny_token_of(url: str) -> str:
    match = re.search(r"(?:token=|bcdn_token=)([^&]+)", url)
    assert match
    return match.group(1)


@given(
    key=keys,
    path=paths,
    lifetime=lifetimes,
    ip=st.none() | ips,
    extra=params,
    scheme=schemes,
    path_form=st.booleans(),
    index=st.integers(0, 1000),
)
def test_bunny_sign_verify_and_every_tampering_fails(
    key, path, lifetime, ip, extra, scheme, path_form, index
):
    expires = NOW + lifetime
    url = bunny_sign_url(
        base_url=BASE,
        path=path,
        key=key,
        expires=expires,
        scheme=scheme,
        ip=ip,
        params=extra,
        path_form=path_form,
    )

    def valid(u: str, *, client_ip: str | None = ip, now: int = NOW) -> bool:
        return bunny_verify_url(url=u, keys=[key], scheme=scheme, now=now, ip=client_ip)

    assert valid(url)
    encoded = quote(path, safe="/")
    before = f"{expires}{encoded}" if path_form else f"{BASE}{encoded}"
    assert valid(url.replace(before, before + "x", 1)) is False
    assert valid(url.replace(f"expires={expires}", f"expires={expires + 1}")) is False
    token = bunny_token_of(url)
    assert valid(url.replace(token, flip(token, index))) is False
    assert valid(url, now=expires + 1) is False
    assert (
        bunny_verify_url(url=url, keys=[key + "x"], scheme=scheme, now=NOW, ip=ip)
        is False
    )
    if ip:
        assert valid(url, client_ip=other_ip(ip)) is False
    for name, value in extra.items():
        encoded_value = quote(value, safe="")
        encoded_name = quote(name, safe="")
        assert (
            valid(
                url.replace(
                    f"&{encoded_name}={encoded_value}&",
                    f"&{encoded_name}={encoded_value}x&",
                )
            )
            is False
        )


@given(key=keys, previous=keys, path=paths, lifetime=lifetimes, scheme=schemes)
def test_bunny_previous_key_stays_valid_during_rotation(
    key, previous, path, lifetime, scheme
):
    assume(key != previous)
    url = bunny_sign_url(
        base_url=BASE, path=path, key=previous, expires=NOW + lifetime, scheme=scheme
    )
    assert bunny_verify_url(url=url, keys=[key, previous], scheme=scheme, now=NOW)
    assert not bunny_verify_url(url=url, keys=[key], scheme=scheme, now=NOW)


@given(
    key=keys,
    directory=paths,
    name=segment,
    lifetime=lifetimes,
    scheme=schemes,
    countries=st.lists(st.sampled_from(["CA", "US", "FR", "DE"]), max_size=2),
)
def test_bunny_directory_token_covers_files_below_it_only(
    key, directory, name, lifetime, scheme, countries
):
    directory += "/"
    expires = NOW + lifetime
    url = bunny_sign_url(
        base_url=BASE,
        path=directory,
        key=key,
        expires=expires,
        scheme=scheme,
        token_path=directory,
        countries=countries,
        path_form=True,
    )
    file_url = url + quote(name)
    country = countries[0] if countries else None

    def valid(u: str, c: str | None = country) -> bool:
        return bunny_verify_url(url=u, keys=[key], scheme=scheme, now=NOW, country=c)

    assert valid(file_url)
    inside = f"{expires}{quote(directory, safe='/')}"
    outside = url.replace(inside, f"{expires}/elsewhere/") + quote(name)
    assert valid(outside) is False
    if countries:
        assert valid(file_url, "ZZ") is False


@given(
    key=keys,
    path=paths,
    ttl=st.integers(1, 10**6),
    age=st.integers(0, 10**6),
    query=st.dictionaries(
        st.text(alphabet="abcdefghij", min_size=1, max_size=5),
        st.text(alphabet="xyz0123", max_size=5),
        max_size=2,
    ),
    encoding=st.sampled_from(["base64", "urlsafe"]),
    index=st.integers(0, 1000),
)
def test_cloudflare_sign_verify_and_every_tampering_fails(
    key, path, ttl, age, query, encoding, index
):
    assume(age < ttl)
    ts = NOW - age
    raw_query = "&".join(f"{k}={v}" for k, v in query.items())
    url = cloudflare_sign_url(
        base_url=BASE, path=path, key=key, ts=ts, query=raw_query, encoding=encoding
    )

    def valid(u: str, now: int = NOW) -> bool:
        return cloudflare_verify_url(
            url=u, keys=[key], ttl=ttl, now=now, encoding=encoding
        )

    assert valid(url)
    assert url.rsplit("&", 1)[-1].startswith("verify=") or "?verify=" in url
    encoded = BASE + quote(path, safe="/")
    assert valid(url.replace(encoded, encoded + "x", 1)) is False
    assert valid(url.replace(f"verify={ts}", f"verify={ts - 1}")) is False
    mac = url.rsplit("-", 1)[1]
    assert valid(url[: -len(mac)] + flip(mac, index)) is False
    assert valid(url, now=ts + ttl) is False
    for k, v in query.items():
        assert valid(url.replace(f"{k}={v}&", f"{k}={v}1&", 1)) is False


@given(key=keys, name=segment, age=st.integers(0, 3599), index=st.integers(0, 1000))
def test_cloudflare_fixed_prefix_covers_a_content_addressed_directory(
    key, name, age, index
):
    directory = "/hls/" + "ab" * 32 + "/"
    assert len(directory) == 70
    url = cloudflare_sign_url(
        base_url=BASE, path=directory + name, key=key, ts=NOW - age, prefix_length=70
    )

    def valid(u: str) -> bool:
        return cloudflare_verify_url(
            url=u, keys=[key], ttl=3600, now=NOW, prefix_length=70
        )

    assert valid(url)
    # The file name only: a name like "b" also occurs inside the directory.
    assert valid(url.replace(directory + quote(name), directory + "other.m4s", 1))
    # One changed character inside the 70-character prefix.
    position = 5 + index % 64
    tampered = url.replace(directory, flip(directory, position), 1)
    assert valid(tampered) is False


@functools.cache
def rsa_keys() -> list[rsa.RSAPrivateKey]:
    fixed = load_private_key(
        Path(__file__).with_name("cloudfront-test-key.pem").read_bytes()
    )
    return [fixed, rsa.generate_private_key(public_exponent=65537, key_size=2048)]


@settings(max_examples=40)
@given(
    key_index=st.integers(0, 1),
    key_id=st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=8),
    path=paths,
    lifetime=lifetimes,
    ip=st.none() | ipv4,
    index=st.integers(0, 300),
)
def test_cloudfront_sign_verify_and_every_tampering_fails(
    key_index, key_id, path, lifetime, ip, index
):
    private_key = rsa_keys()[key_index]
    public_keys = {key_id: private_key.public_key()}
    signer = cloudfront_signer(key_pair_id=key_id, private_key=private_key)
    expires = NOW + lifetime
    resource = BASE + quote(path, safe="/")
    url = cloudfront_sign_url(url=resource, signer=signer, expires=expires, ip=ip)

    def valid(u: str, *, client_ip: str | None = ip, now: int = NOW) -> bool:
        return cloudfront_verify_url(
            url=u, public_keys=public_keys, now=now, ip=client_ip
        )

    assert valid(url)
    assert valid(url.replace(resource, resource + "x", 1)) is False
    assert valid(url, now=expires) is False
    if ip is None:
        assert (
            valid(url.replace(f"Expires={expires}", f"Expires={expires + 1}")) is False
        )
    else:
        assert valid(url, client_ip=other_ip(ip)) is False
        assert valid(url, client_ip=None) is False
    signature = url.split("Signature=")[1].split("&")[0]
    # The last base64 characters carry padding bits that decode the same.
    position = index % (len(signature) - 4)
    assert valid(url.replace(signature, flip(signature, position))) is False
    other = rsa_keys()[1 - key_index].public_key()
    assert (
        cloudfront_verify_url(url=url, public_keys={key_id: other}, now=NOW, ip=ip)
        is False
    )


@settings(max_examples=20)
@given(directory=paths, name=segment, lifetime=lifetimes)
def test_cloudfront_wildcard_cookies_cover_the_directory_only(
    directory, name, lifetime
):
    private_key = rsa_keys()[0]
    signer = cloudfront_signer(key_pair_id="KID", private_key=private_key)
    prefix = BASE + quote(directory, safe="/") + "/"
    cookies = cloudfront_signed_cookies(
        resource=prefix + "*", signer=signer, expires=NOW + lifetime
    )
    public_keys = {"KID": private_key.public_key()}
    inside = prefix + quote(name)
    assert cloudfront_verify_cookies(
        url=inside, cookies=cookies, public_keys=public_keys, now=NOW
    )
    assert not cloudfront_verify_cookies(
        url=BASE + "/elsewhere/" + quote(name),
        cookies=cookies,
        public_keys=public_keys,
        now=NOW,
    )
    assert not cloudfront_verify_cookies(
        url=inside, cookies=cookies, public_keys=public_keys, now=NOW + lifetime
    )


@given(
    access_key=st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=4),
    secret_key=keys,
    path=paths,
    expires_in=st.integers(1, 604800),
    age=st.integers(0, 604799),
    index=st.integers(0, 63),
)
def test_r2_sign_verify_and_every_tampering_fails(
    access_key, secret_key, path, expires_in, age, index
):
    assume(age < expires_in)
    issued = NOW - age
    url = sigv4_presign(
        url=f"https://acc.r2.cloudflarestorage.com/bucket{quote(path, safe='/')}",
        access_key=access_key,
        secret_key=secret_key,
        region="auto",
        expires_in=expires_in,
        now=dt.datetime.fromtimestamp(issued, tz=dt.UTC),
    )
    secrets = {access_key: secret_key}

    def valid(u: str, now: int = NOW) -> bool:
        return sigv4_verify_url(url=u, secret_keys=secrets, now=now)

    assert valid(url)
    head = url.split("?")[0]
    assert valid(url.replace(head, head + "x", 1)) is False
    expires = f"X-Amz-Expires={expires_in}"
    assert valid(url.replace(expires, f"X-Amz-Expires={expires_in + 1}")) is False
    signature = url.split("X-Amz-Signature=")[1]
    i = index % 64
    changed = signature[:i] + ("0" if signature[i] != "0" else "1") + signature[i + 1 :]
    assert valid(url.replace(signature, changed)) is False
    assert valid(url, now=issued + expires_in) is False


@given(
    key=keys,
    path=paths,
    lifetime=lifetimes,
    scheme=schemes,
    countries=st.lists(st.sampled_from(["CA", "US", "FR"]), max_size=2),
    blocked=st.lists(st.sampled_from(["RU", "CN"]), max_size=2),
    speed_limit=st.integers(0, 5000),
)
def test_bunny_provider_fast_path_signs_like_the_reference_function(
    key, path, lifetime, scheme, countries, blocked, speed_limit
):
    from cdn.bunny import BunnyProvider

    expires = NOW + lifetime
    provider = BunnyProvider(
        base_url=BASE,
        key=key,
        scheme=scheme,
        countries=countries,
        countries_blocked=blocked,
        speed_limit=speed_limit,
    )
    assert provider.sign_url(path=path, expires_at=expires).url == bunny_sign_url(
        base_url=BASE,
        path=path,
        key=key,
        expires=expires,
        scheme=scheme,
        countries=countries,
        countries_blocked=blocked,
        speed_limit=speed_limit,
    )


@given(key=keys, path=paths, encoding=st.sampled_from(["base64", "urlsafe"]))
def test_cloudflare_provider_fast_path_signs_like_the_reference_function(
    key, path, encoding
):
    from cdn.cloudflare import CloudflareProvider

    provider = CloudflareProvider(base_url=BASE, key=key, ttl=3600, encoding=encoding)
    signed = provider.sign_url(path=path, expires_at=NOW + 3600)
    ts = signed.expires_at - 3600
    assert signed.url == cloudflare_sign_url(
        base_url=BASE, path=path, key=key, ts=ts, encoding=encoding
    )
