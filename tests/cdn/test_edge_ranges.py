"""Byte ranges of an HLS package through each CDN's edge, on the real S3 server.

A package is one fMP4 file per rung read by EXT-X-BYTERANGE, so every path
to its bytes must answer ranges: here a stand-in edge per provider
(tests/cdn/edge.py) checks the directory token the project signs with
`cdn_signed_directory`, as that provider's edge would, and proxies to the
bucket.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from botocore.signers import CloudFrontSigner
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from cdn.services import SignedDirectory, cdn_signed_directory
from tests.cdn.edge import Edge, bucket_upstream, run_edge
from tests.cdn.test_vectors import BUNNY_EXPIRES, BUNNY_HMAC_URLS, BUNNY_HOST
from tests.cdn.verifiers import (
    BunnyEdge,
    CloudflareEdge,
    CloudFrontEdge,
    EdgeRequest,
    Verifier,
)

KEY_FILE = Path(__file__).with_name("cloudfront-test-key.pem")
KEY_PAIR_ID = "K2JCJMDEHXQW5F"
BUNNY_KEY = "bunny-zone-key"
CLOUDFLARE_KEY = "waf-secret"
SIZE = 200_000
MEDIA = "64k/media.mp4"
MASTER = "master.m3u8"
PROVIDERS = ["bunny-hmac", "bunny-sha256", "cloudflare", "cloudfront-cookie"]


def private_key() -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(KEY_FILE.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


@dataclass
class Package:
    content_hash: str
    other_hash: str  # a second package, also in the bucket
    media: bytes
    master: bytes

    @property
    def directory(self) -> str:
        return f"/hls/{self.content_hash}/"


@pytest.fixture
def package(s3) -> Package:
    content_hash, other_hash = os.urandom(32).hex(), os.urandom(32).hex()
    media = os.urandom(SIZE)
    master = (
        b"#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n"
        b'#EXT-X-STREAM-INF:BANDWIDTH=70000,CODECS="mp4a.40.2"\n64k/index.m3u8\n'
    )
    for directory in (content_hash, other_hash):
        s3.put_object(
            Bucket=s3.bucket,
            Key=f"hls/{directory}/{MEDIA}",
            Body=media,
            ContentType="audio/mp4",
            CacheControl="public, max-age=31536000, immutable",
        )
        s3.put_object(
            Bucket=s3.bucket,
            Key=f"hls/{directory}/{MASTER}",
            Body=master,
            ContentType="application/vnd.apple.mpegurl",
        )
    return Package(content_hash, other_hash, media, master)


def configure(settings, provider: str, base_url: str) -> None:
    """The project's settings for `provider`, its CDN at `base_url`."""
    settings.CDN_ENABLED = True
    settings.CDN_BASE_URL = base_url
    if provider.startswith("bunny"):
        settings.CDN_PROVIDER = "bunny"
        settings.CDN_SECURITY_KEY = BUNNY_KEY
        settings.CDN_BUNNY_TOKEN_SCHEME = provider.removeprefix("bunny-")
    elif provider == "cloudflare":
        settings.CDN_PROVIDER = "cloudflare"
        settings.CDN_SECURITY_KEY = CLOUDFLARE_KEY
    else:
        settings.CDN_PROVIDER = "cloudfront"
        settings.CDN_KEY_PAIR_ID = KEY_PAIR_ID
        settings.CDN_PRIVATE_KEY_FILE = str(KEY_FILE)


def edge_for(provider: str, settings) -> Verifier:
    """The zone as the operator sets it up (docs/OPERATIONS.md, "CDN")."""
    if provider.startswith("bunny"):
        return BunnyEdge(keys=[BUNNY_KEY])
    if provider == "cloudflare":
        return CloudflareEdge(
            keys=[CLOUDFLARE_KEY],
            ttl=settings.CDN_TOKEN_TTL,
            prefix_length=settings.CDN_CLOUDFLARE_PREFIX_LENGTH,
        )
    return CloudFrontEdge(public_keys={KEY_PAIR_ID: private_key().public_key()})


def flip(text: str) -> str:
    """`text` with one letter or digit near its middle changed, never one of
    a %XX escape: still well-formed, so only the MAC check can refuse it."""
    plain = [
        i
        for i, c in enumerate(text)
        if c.isalnum() and "%" not in text[max(0, i - 2) : i]
    ]
    i = min(plain, key=lambda j: abs(j - len(text) // 2))
    return text[:i] + ("A" if text[i] != "A" else "B") + text[i + 1 :]


@dataclass
class Viewer:
    """A player holding the package's signed directory."""

    provider: str
    edge: Edge
    signed: SignedDirectory
    package: Package

    @property
    def cookies(self) -> dict[str, str] | None:
        return (
            dict(self.signed.cookies) if self.provider == "cloudfront-cookie" else None
        )

    def url(self, name: str = MEDIA) -> str:
        if self.provider == "cloudfront-cookie":
            return self.signed.url + name
        return self.signed.file_url(name)

    def fetch(
        self,
        name: str = MEDIA,
        *,
        method: str = "GET",
        url: str | None = None,
        cookies: dict[str, str] | None = None,
        **headers: str,
    ) -> requests.Response:
        return requests.request(
            method,
            url or self.url(name),
            headers={k.replace("_", "-"): v for k, v in headers.items()},
            cookies=cookies if cookies is not None else self.cookies,
            timeout=30,
        )

    def tampered(self) -> tuple[str, dict[str, str] | None]:
        """The media URL and cookies with one character of the MAC changed."""
        url, cookies = self.url(), self.cookies
        if cookies is not None:
            signature = cookies["CloudFront-Signature"]
            return url, {**cookies, "CloudFront-Signature": flip(signature)}
        pattern = {
            "bunny-hmac": r"bcdn_token=HS256-([^&]+)",
            "bunny-sha256": r"bcdn_token=([^&]+)",
            "cloudflare": r"verify=\d{10}-(.+)$",
        }[self.provider]
        match = re.search(pattern, url)
        assert match
        start, end = match.span(1)
        return url[:start] + flip(url[start:end]) + url[end:], cookies

    def outside(self) -> str:
        """The media URL of the other package, with this package's token."""
        here = self.package.directory
        assert self.url().count(here) == 1
        return self.url().replace(here, f"/hls/{self.package.other_hash}/")


@pytest.fixture(params=PROVIDERS)
def viewer(request, settings, package, s3, s3_server) -> Iterator[Viewer]:
    provider = request.param
    upstream = bucket_upstream(s3, s3_server)
    with run_edge(edge_for(provider, settings), upstream) as edge:
        configure(settings, provider, edge.base_url)
        signed = cdn_signed_directory(path=package.directory)
        yield Viewer(provider, edge, signed, package)


def test_the_project_hands_out_the_form_each_edge_checks(viewer):
    url = viewer.url()
    assert url.startswith(viewer.edge.base_url + "/")
    if viewer.provider.startswith("bunny"):
        assert "/bcdn_token=" in url
        assert "?" not in url  # relative URIs of the playlists keep the token
    elif viewer.provider == "cloudflare":
        assert re.search(r"\?verify=\d{10}-", url)
    else:
        assert "?" not in url
        assert set(viewer.signed.cookies) == {
            "CloudFront-Policy",
            "CloudFront-Signature",
            "CloudFront-Key-Pair-Id",
        }


def test_a_range_is_206_with_exactly_those_bytes(viewer):
    response = viewer.fetch(Range="bytes=100-199")
    assert response.status_code == 206, response.text
    assert response.content == viewer.package.media[100:200]
    assert response.headers["Content-Range"] == f"bytes 100-199/{SIZE}"
    assert response.headers["Content-Length"] == "100"
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.headers["Content-Type"] == "audio/mp4"


def test_a_suffix_range_is_the_last_bytes(viewer):
    response = viewer.fetch(Range="bytes=-50")
    assert response.status_code == 206
    assert response.content == viewer.package.media[-50:]
    assert response.headers["Content-Range"] == f"bytes {SIZE - 50}-{SIZE - 1}/{SIZE}"
    assert response.headers["Content-Length"] == "50"


def test_an_open_range_runs_to_the_end(viewer):
    response = viewer.fetch(Range="bytes=1000-")
    assert response.status_code == 206
    assert response.content == viewer.package.media[1000:]
    assert response.headers["Content-Range"] == f"bytes 1000-{SIZE - 1}/{SIZE}"
    assert response.headers["Content-Length"] == str(SIZE - 1000)


def test_a_range_past_the_end_is_416(viewer):
    for header in (f"bytes={SIZE}-", f"bytes={SIZE + 100}-{SIZE + 199}"):
        response = viewer.fetch(Range=header)
        assert response.status_code == 416, header
        assert viewer.package.media[:16] not in response.content


def test_a_range_ending_past_the_end_is_cut_at_the_end(viewer):
    response = viewer.fetch(Range=f"bytes={SIZE - 10}-{SIZE + 500}")
    assert response.status_code == 206
    assert response.content == viewer.package.media[-10:]
    assert response.headers["Content-Range"] == f"bytes {SIZE - 10}-{SIZE - 1}/{SIZE}"


def test_head_gives_the_length_and_accepts_ranges(viewer):
    response = viewer.fetch(method="HEAD")
    assert response.status_code == 200
    assert response.headers["Content-Length"] == str(SIZE)
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.headers["ETag"]
    assert response.content == b""


def test_the_whole_file_and_the_master_playlist(viewer):
    media = viewer.fetch()
    assert media.status_code == 200
    assert media.content == viewer.package.media
    assert "Content-Range" not in media.headers
    master = viewer.fetch(MASTER)
    assert master.status_code == 200
    assert master.content == viewer.package.master
    assert master.headers["Content-Type"] == "application/vnd.apple.mpegurl"


def test_if_none_match_with_the_etag_is_304(viewer):
    etag = viewer.fetch(method="HEAD").headers["ETag"]
    for extra in ({}, {"Range": "bytes=100-199"}):
        response = viewer.fetch(If_None_Match=etag, **extra)
        assert response.status_code == 304, extra
        assert response.content == b""
        assert response.headers["ETag"] == etag
    assert viewer.fetch(If_None_Match='"another"').status_code == 200


def test_if_range_with_the_current_etag_keeps_the_range(viewer):
    etag = viewer.fetch(method="HEAD").headers["ETag"]
    response = viewer.fetch(Range="bytes=0-9", If_Range=etag)
    assert response.status_code == 206
    assert response.content == viewer.package.media[:10]


def test_a_tampered_token_is_403_even_for_a_range(viewer):
    url, cookies = viewer.tampered()
    before = list(viewer.edge.forwarded)
    response = viewer.fetch(url=url, cookies=cookies or {}, Range="bytes=100-199")
    assert response.status_code == 403
    assert viewer.package.media[100:200] not in response.content
    assert viewer.edge.forwarded == before  # the origin never saw it


def test_a_file_outside_the_signed_directory_is_403_even_for_a_range(viewer):
    before = list(viewer.edge.forwarded)
    for header in ("bytes=100-199", "bytes=-50"):
        response = viewer.fetch(url=viewer.outside(), Range=header)
        assert response.status_code == 403, header
    assert viewer.edge.forwarded == before


def test_an_expired_token_is_403(viewer):
    expired = cdn_signed_directory(
        path=viewer.package.directory, expires_at=int(time.time()) - 5
    )
    stale = Viewer(viewer.provider, viewer.edge, expired, viewer.package)
    assert stale.fetch(Range="bytes=100-199").status_code == 403


def test_no_token_is_403(viewer):
    bare = viewer.edge.base_url + viewer.package.directory + MEDIA
    assert viewer.fetch(url=bare, cookies={}, Range="bytes=0-9").status_code == 403


# The edges' verifiers are independent of the project's code: they reproduce
# the providers' own vectors (shared/reference/cdn-hls.md).


def at(target: str, now: int, **kwargs: Any) -> EdgeRequest:
    return EdgeRequest(target=target, base_url=BUNNY_HOST, now=now, **kwargs)


@pytest.mark.parametrize("name", sorted(BUNNY_HMAC_URLS))
def test_the_bunny_edge_accepts_the_official_hmac_vectors(name):
    arguments = cast(dict[str, Any], BUNNY_HMAC_URLS[name][0])
    target = BUNNY_HMAC_URLS[name][1]
    countries = arguments.get("countries")
    context = {
        "client_ip": arguments.get("ip"),
        "country": countries[0] if countries else None,
    }
    path = arguments["path"]
    edge = BunnyEdge(keys=["SecurityKey"])
    assert edge.origin_path(at(target, BUNNY_EXPIRES - 60, **context)) == path
    assert edge.origin_path(at(target, BUNNY_EXPIRES + 1, **context)) is None
    assert BunnyEdge(keys=["Other"]).origin_path(at(target, 0, **context)) is None
    if context["client_ip"]:
        assert edge.origin_path(at(target, 0, client_ip="192.0.2.7")) is None


@pytest.mark.parametrize(
    ("target", "country"),
    [
        (
            "/abc?token=xwPaUzEMSgOZ7yl86K55G7len9n1UMiuP36IAyw8Mjs&token_path=%2Fabc",
            None,
        ),
        ("/abc/?token=e0fYj-NC_YeROS_0gTGvscP7HR_Du78I7WBVSDV8P4E", None),
        (
            "/300kb.jpg?token=bq6dlNKcoVbTrzCJepE5gHoC436eTtz97Ruk89V8tmU"
            "&token_countries_blocked=CA",
            "US",
        ),
        (
            "/?token=3ZdIIg1-PB_UOF62lQIqfT4MWr2ENIdd0KWnQVuej3w"
            "&token_countries=CA&token_path=%2F",
            "CA",
        ),
        (
            "/bcdn_token=dkkuPb40jMpzUZYyrqbxcqyYjjGmKB_KOmQLY_2orqY"
            "&token_path=%2Fhls%2Fabc%2F&expires=1598024587/hls/abc/seg.m4s",
            None,
        ),
        (
            "/bcdn_token=HS256-F5ZiOZ_xL5tQBpY6sXZS9OlbM9w-Xnl561UT7A_uzMY"
            "&token_path=%2Fhls%2Fabc%2F&expires=1598024587/hls/abc/seg.m4s",
            None,
        ),
    ],
)
def test_the_bunny_edge_accepts_the_legacy_and_directory_vectors(target, country):
    if "expires=" not in target:
        target += f"&expires={BUNNY_EXPIRES}"
    edge = BunnyEdge(keys=["SecurityKey"])
    path = edge.origin_path(at(target, BUNNY_EXPIRES, country=country))
    assert path is not None
    assert "token" not in path
    if country:
        assert (
            edge.origin_path(
                at(target, BUNNY_EXPIRES, country="ZZ" if country == "CA" else "CA")
            )
            is None
        )


def test_the_cloudflare_edge_accepts_the_derived_vector_in_both_encodings():
    mac = "XsZ5NmtNBxOd4f4fBOtqVmpWRnDRNkHKVZieqDPKu3U"
    issued = 1484063787
    for urlsafe, encoded in ((False, mac + "%3D"), (True, mac)):
        edge = CloudflareEdge(keys=["mysecrettoken"], ttl=600, urlsafe=urlsafe)
        target = f"/images/cat.jpg?verify={issued}-{encoded}"
        assert edge.origin_path(at(target, issued + 599)) == "/images/cat.jpg"
        assert edge.origin_path(at(target, issued + 600)) is None
        wrong = CloudflareEdge(keys=["other"], ttl=600, urlsafe=urlsafe)
        assert wrong.origin_path(at(target, issued)) is None


def test_the_cloudfront_edge_accepts_what_botocore_signs():
    """botocore (AWS's own signer) with the test key: a wildcard custom
    policy as query or cookies, and a canned URL."""
    key = private_key()

    def sign(message: bytes) -> bytes:
        return key.sign(message, padding.PKCS1v15(), hashes.SHA1())  # noqa: S303

    signer = CloudFrontSigner(KEY_PAIR_ID, sign)
    base = "https://d111111abcdef8.cloudfront.net"
    expires = int(time.time()) + 600
    moment = dt.datetime.fromtimestamp(expires, tz=dt.UTC)
    policy = signer.build_policy(f"{base}/hls/abc/*", date_less_than=moment)
    signed_url = signer.generate_presigned_url(
        f"{base}/hls/abc/64k/media.mp4", policy=policy
    )
    edge = CloudFrontEdge(public_keys={KEY_PAIR_ID: key.public_key()})
    now = int(time.time())

    def request(target: str, **kwargs: Any) -> EdgeRequest:
        return EdgeRequest(target=target, base_url=base, now=now, **kwargs)

    target = signed_url.removeprefix(base)
    assert edge.origin_path(request(target)) == "/hls/abc/64k/media.mp4"
    elsewhere = target.replace("/hls/abc/", "/hls/abd/")
    assert edge.origin_path(request(elsewhere)) is None
    cookies = {f"CloudFront-{k}": v for k, v in parse_qsl(urlsplit(signed_url).query)}
    assert edge.origin_path(request("/hls/abc/master.m3u8", cookies=cookies))
    assert edge.origin_path(request("/hls/abd/master.m3u8", cookies=cookies)) is None
    canned = signer.generate_presigned_url(
        f"{base}/tracks/a.wav", date_less_than=moment
    )
    assert edge.origin_path(request(canned.removeprefix(base))) == "/tracks/a.wav"
    assert (
        edge.origin_path(request(canned.removeprefix(base).replace("a.wav", "b.wav")))
        is None
    )
    stale = EdgeRequest(target=canned.removeprefix(base), base_url=base, now=expires)
    assert edge.origin_path(stale) is None
