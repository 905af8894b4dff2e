"""Every official and derived vector of the reference reproduces; URL shapes."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import shutil
import subprocess
from pathlib import Path

import botocore.config
import botocore.session
import pytest
from botocore.signers import CloudFrontSigner

from cdn.bunny import bunny_sign_url, bunny_token
from cdn.cloudflare import cloudflare_mac, cloudflare_sign_url
from cdn.cloudfront import (
    cloudfront_sign_url,
    cloudfront_signed_cookies,
    cloudfront_signer,
    load_private_key,
    safe_b64encode,
)
from cdn.r2 import sigv4_presign

KEY_FILE = Path(__file__).with_name("cloudfront-test-key.pem")
BUNNY_KEY = "SecurityKey"
BUNNY_EXPIRES = 1598024587
BUNNY_HOST = "https://token-tester.b-cdn.net"

# e2e/vectors.json of BunnyWay/BunnyCDN.TokenAuthentication (HEAD 48ff1af).
BUNNY_HMAC_URLS = {
    "plain": (
        {"path": "/300kb.jpg"},
        "/300kb.jpg?token=HS256-o10JRWlsAItyAsdKS6jJKjabHN4FrFsplDHPV1idcX4"
        "&expires=1598024587",
    ),
    "countries_only": (
        {"path": "/300kb.jpg", "countries": ["CA", "US"]},
        "/300kb.jpg?token=HS256-i5s3Uv7mnrFfN5nznwU2BxhILpnipYeE18TapV0WNFM"
        "&token_countries=CA%2CUS&expires=1598024587",
    ),
    "blocked_only": (
        {"path": "/300kb.jpg", "countries_blocked": ["RU", "CN"]},
        "/300kb.jpg?token=HS256-JS8dSuBSjSH-W2-xhdkCPC36-2rlxfDCQJjlNMPqKZQ"
        "&token_countries_blocked=RU%2CCN&expires=1598024587",
    ),
    "path_only": (
        {"path": "/abc/300kb.jpg", "token_path": "/abc"},
        "/abc/300kb.jpg?token=HS256-uVZvT3SbEoVKYJyDJgbcsDmSFf73cv-uNUVaJiKWpbQ"
        "&token_path=%2Fabc&expires=1598024587",
    ),
    "ignore_params": (
        {"path": "/300kb.jpg", "ignore_params": True},
        "/300kb.jpg?token=HS256-1lwWBD_c1IAGSj1UKPoxreu8ePDQ-Z9FoWLcRn_RRH0"
        "&token_ignore_params=true&expires=1598024587",
    ),
    "limit_only": (
        {"path": "/300kb.jpg", "speed_limit": 1000},
        "/300kb.jpg?token=HS256-DAVapqNNED3Z7JkjRTYX0UOIHNtbHEuuhRNEc4A7mMQ"
        "&limit=1000&expires=1598024587",
    ),
    "ip_v4_only": (
        {"path": "/300kb.jpg", "ip": "1.2.3.4"},
        "/300kb.jpg?token=HS256-1-L2rISTLcujMY9UFf2tbZ41d5i-Bme1g1oTK_Z2QMLJk"
        "&expires=1598024587",
    ),
    "ip_v6_only": (
        {"path": "/300kb.jpg", "ip": "2001:db8:85a3::8a2e:370:7334"},
        "/300kb.jpg?token=HS256-1-Z1BaGdhTZdU4iANcyKpurFR2VgCNdqC6hlBv5x_TyaI"
        "&expires=1598024587",
    ),
    "ip_v4_countries": (
        {
            "path": "/abc/",
            "ip": "1.2.3.4",
            "countries": ["CA", "US"],
            "path_form": True,
        },
        "/bcdn_token=HS256-1-4lIDGI2_t3wiTmopXzB7z71wtZKTe1Ic0lDlL72iAJw"
        "&token_countries=CA%2CUS&expires=1598024587/abc/",
    ),
    "ip_v6_countries": (
        {
            "path": "/abc/",
            "ip": "2001:db8:85a3::8a2e:370:7334",
            "countries": ["CA", "US"],
            "path_form": True,
        },
        "/bcdn_token=HS256-1-LGpoP8i1bV4P1kN4NrO_iYxLJuLAD2R3Clstsy9kWAc"
        "&token_countries=CA%2CUS&expires=1598024587/abc/",
    ),
    "ip_v4_limit": (
        {"path": "/abc/", "ip": "1.2.3.4", "speed_limit": 5000, "path_form": True},
        "/bcdn_token=HS256-1-X01Z6A9xAo1_ds1XFf9y8gAIzk_JpmoevOx7EtgMQhY"
        "&limit=5000&expires=1598024587/abc/",
    ),
    "ip_v4_path": (
        {"path": "/abc/300kb.jpg", "ip": "1.2.3.4", "token_path": "/abc"},
        "/abc/300kb.jpg?token=HS256-1-wag9tC0r1QWfg-2eMj5QcdzgPLCIdQb-D0WVU1Mhg2w"
        "&token_path=%2Fabc&expires=1598024587",
    ),
    "ip_v4_ignore": (
        {"path": "/300kb.jpg", "ip": "1.2.3.4", "ignore_params": True},
        "/300kb.jpg?token=HS256-1-rWalmQRJ-A_qrb08-JoeU3b-gOS5mJiJjPOfDWa0gsQ"
        "&token_ignore_params=true&expires=1598024587",
    ),
    "ip_v4_blocked": (
        {"path": "/300kb.jpg", "ip": "1.2.3.4", "countries_blocked": ["RU", "CN"]},
        "/300kb.jpg?token=HS256-1-myF6Rnz7Z9VAfAjjkyUHJQ_6gr-AJ7VyPsG5rQdQKm8"
        "&token_countries_blocked=RU%2CCN&expires=1598024587",
    ),
    "ip_v6_blocked": (
        {
            "path": "/300kb.jpg",
            "ip": "2001:db8:85a3::8a2e:370:7334",
            "countries_blocked": ["RU", "CN"],
        },
        "/300kb.jpg?token=HS256-1-XGkCf_JKNfOrpWAM_CIYjZBbVHbB4U1mxHg8pXJtBNc"
        "&token_countries_blocked=RU%2CCN&expires=1598024587",
    ),
}


@pytest.mark.parametrize("name", sorted(BUNNY_HMAC_URLS))
def test_bunny_hmac_vectors_reproduce_url_for_url(name):
    arguments, expected = BUNNY_HMAC_URLS[name]
    url = bunny_sign_url(
        base_url=BUNNY_HOST, key=BUNNY_KEY, expires=BUNNY_EXPIRES, **arguments
    )
    assert url == BUNNY_HOST + expected


# The legacy SHA-256 scheme: vectors of TokenSignerTests.cs at commit 1019b23.
@pytest.mark.parametrize(
    ("signature_path", "params", "token"),
    [
        ("/abc", {"token_path": "/abc"}, "xwPaUzEMSgOZ7yl86K55G7len9n1UMiuP36IAyw8Mjs"),
        ("/abc/", {}, "e0fYj-NC_YeROS_0gTGvscP7HR_Du78I7WBVSDV8P4E"),
        (
            "/300kb.jpg",
            {"token_countries_blocked": "CA"},
            "bq6dlNKcoVbTrzCJepE5gHoC436eTtz97Ruk89V8tmU",
        ),
        (
            "/",
            {"token_countries": "CA", "token_path": "/"},
            "3ZdIIg1-PB_UOF62lQIqfT4MWr2ENIdd0KWnQVuej3w",
        ),
    ],
)
def test_bunny_legacy_sha256_vectors(signature_path, params, token):
    assert (
        bunny_token(
            key=BUNNY_KEY,
            scheme="sha256",
            signature_path=signature_path,
            expires=BUNNY_EXPIRES,
            params=params,
        )
        == token
    )


@pytest.mark.parametrize(
    ("scheme", "token"),
    [
        ("hmac", "HS256-F5ZiOZ_xL5tQBpY6sXZS9OlbM9w-Xnl561UT7A_uzMY"),
        ("sha256", "dkkuPb40jMpzUZYyrqbxcqyYjjGmKB_KOmQLY_2orqY"),
    ],
)
def test_bunny_hls_directory_derived_vectors(scheme, token):
    url = bunny_sign_url(
        base_url=BUNNY_HOST,
        path="/hls/abc/",
        key=BUNNY_KEY,
        expires=BUNNY_EXPIRES,
        scheme=scheme,
        token_path="/hls/abc/",
        path_form=True,
    )
    assert url == (
        f"{BUNNY_HOST}/bcdn_token={token}&token_path=%2Fhls%2Fabc%2F"
        f"&expires={BUNNY_EXPIRES}/hls/abc/"
    )


def test_bunny_url_shape_sorts_and_encodes_parameters():
    url = bunny_sign_url(
        base_url=BUNNY_HOST + "/",
        path="/a b/ü.mp3",
        key=BUNNY_KEY,
        expires=BUNNY_EXPIRES,
        params={"z": "1/2", "a": "x y"},
        countries=["CA", "US"],
    )
    token = re.escape(url.split("token=")[1].split("&")[0])
    assert re.fullmatch(
        rf"{BUNNY_HOST}/a%20b/%C3%BC\.mp3\?token={token}"
        r"&a=x%20y&token_countries=CA%2CUS&z=1%2F2&expires=1598024587",
        url,
    )
    assert re.fullmatch(r"HS256-[A-Za-z0-9_-]{43}", url.split("token=")[1][:49])


def test_bunny_refuses_milliseconds_reserved_names_and_an_empty_key():
    common = {"base_url": BUNNY_HOST, "path": "/a", "key": BUNNY_KEY}
    with pytest.raises(ValueError, match="Unix seconds"):
        bunny_sign_url(**common, expires=BUNNY_EXPIRES * 1000)
    with pytest.raises(ValueError, match="'expires'"):
        bunny_sign_url(**common, expires=BUNNY_EXPIRES, params={"expires": "1"})
    with pytest.raises(ValueError, match="empty"):
        bunny_sign_url(**{**common, "key": ""}, expires=BUNNY_EXPIRES)


def test_cloudflare_derived_vector_in_both_encodings():
    standard = "XsZ5NmtNBxOd4f4fBOtqVmpWRnDRNkHKVZieqDPKu3U="
    assert cloudflare_mac(
        key="mysecrettoken", message="/images/cat.jpg", ts=1484063787, encoding="base64"
    ) == standard.replace("=", "%3D")
    common = {
        "base_url": "https://cdn.example",
        "path": "/images/cat.jpg",
        "key": "mysecrettoken",
        "ts": 1484063787,
    }
    assert cloudflare_sign_url(**common) == (
        "https://cdn.example/images/cat.jpg"
        "?verify=1484063787-XsZ5NmtNBxOd4f4fBOtqVmpWRnDRNkHKVZieqDPKu3U%3D"
    )
    assert cloudflare_sign_url(**common, encoding="urlsafe") == (
        "https://cdn.example/images/cat.jpg"
        "?verify=1484063787-XsZ5NmtNBxOd4f4fBOtqVmpWRnDRNkHKVZieqDPKu3U"
    )


def test_cloudflare_verify_is_the_last_parameter_and_prefix_form_signs_the_prefix():
    url = cloudflare_sign_url(
        base_url="https://cdn.example",
        path="/hls/0123/seg_00001.m4s",
        key="k",
        ts=1484063787,
        query="a=1",
        prefix_length=10,
    )
    assert url.startswith("https://cdn.example/hls/0123/seg_00001.m4s?a=1&verify=")
    mac = cloudflare_mac(
        key="k", message="/hls/0123/?a=1", ts=1484063787, encoding="base64"
    )
    assert url.endswith(f"&verify=1484063787-{mac}")


def stub_signer() -> CloudFrontSigner:
    return CloudFrontSigner("MY_KEY_ID", lambda message: b"signed")


def test_cloudfront_botocore_vectors():
    signer = stub_signer()
    moment = dt.datetime(2016, 1, 1, tzinfo=dt.UTC)
    assert signer.build_policy("foo", moment) == (
        '{"Statement":[{"Resource":"foo","Condition":'
        '{"DateLessThan":{"AWS:EpochTime":1451606400}}}]}'
    )
    assert cloudfront_sign_url(
        url="http://test.com/foo.txt", signer=signer, expires=1451606400
    ) == (
        "http://test.com/foo.txt?Expires=1451606400&Signature=c2lnbmVk"
        "&Key-Pair-Id=MY_KEY_ID"
    )


def test_cloudfront_custom_policy_shape_and_safe_base64():
    signer = stub_signer()
    url = cloudfront_sign_url(
        url="https://d.example/hls/a/x.m4s?v=1",
        signer=signer,
        expires=1451606400,
        resource="https://d.example/hls/a/*",
        ip="192.0.2.1",
    )
    head, policy, signature, key_id = url.split("&")
    assert head.startswith("https://d.example/hls/a/x.m4s?v=1")
    assert signature == "Signature=c2lnbmVk"
    assert key_id == "Key-Pair-Id=MY_KEY_ID"
    encoded = policy.removeprefix("v=1&").removeprefix("Policy=")
    assert re.fullmatch(r"[A-Za-z0-9~_-]+", encoded)
    decoded = base64.b64decode(
        encoded.replace("-", "+").replace("_", "=").replace("~", "/")
    )
    assert json.loads(decoded) == {
        "Statement": [
            {
                "Resource": "https://d.example/hls/a/*",
                "Condition": {
                    "DateLessThan": {"AWS:EpochTime": 1451606400},
                    "IpAddress": {"AWS:SourceIp": "192.0.2.1/32"},
                },
            }
        ]
    }
    assert safe_b64encode(b"\xfb\xff\xfe") == "-~~-"
    assert safe_b64encode(b"a") == "YQ__"


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")
def test_cloudfront_signature_matches_openssl(tmp_path):
    """The AWS guide's openssl recipe gives the same signature (PKCS#1 v1.5)."""
    signer = cloudfront_signer(
        key_pair_id="K2JCJMDEHXQW5F",
        private_key=load_private_key(KEY_FILE.read_bytes()),
    )
    url = cloudfront_sign_url(
        url="https://d111111abcdef8.cloudfront.net/tracks/a.wav",
        signer=signer,
        expires=1893456000,
    )
    policy = tmp_path / "policy.json"
    policy.write_text(
        '{"Statement":[{"Resource":"https://d111111abcdef8.cloudfront.net/tracks/'
        'a.wav","Condition":{"DateLessThan":{"AWS:EpochTime":1893456000}}}]}'
    )
    signature = subprocess.run(
        ["openssl", "sha1", "-sign", str(KEY_FILE), "-binary", str(policy)],
        capture_output=True,
        check=True,
    ).stdout
    expected = safe_b64encode(signature)
    assert url == (
        "https://d111111abcdef8.cloudfront.net/tracks/a.wav?Expires=1893456000"
        f"&Signature={expected}&Key-Pair-Id=K2JCJMDEHXQW5F"
    )


def test_cloudfront_cookies_carry_a_wildcard_policy():
    cookies = cloudfront_signed_cookies(
        resource="https://d.example/hls/a/*", signer=stub_signer(), expires=1451606400
    )
    assert set(cookies) == {
        "CloudFront-Policy",
        "CloudFront-Signature",
        "CloudFront-Key-Pair-Id",
    }
    assert cookies["CloudFront-Signature"] == "c2lnbmVk"
    assert cookies["CloudFront-Key-Pair-Id"] == "MY_KEY_ID"


def test_s3_sigv4_presign_vector_from_the_aws_guide():
    url = sigv4_presign(
        url="https://examplebucket.s3.amazonaws.com/test.txt",
        access_key="AKIAIOSFODNN7EXAMPLE",
        secret_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        region="us-east-1",
        expires_in=86400,
        now=dt.datetime(2013, 5, 24, tzinfo=dt.UTC),
    )
    assert url == (
        "https://examplebucket.s3.amazonaws.com/test.txt"
        "?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3"
        "%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400"
        "&X-Amz-SignedHeaders=host"
        "&X-Amz-Signature="
        "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
    )


def test_r2_presign_matches_botocore_for_region_auto(monkeypatch):
    """botocore signs the same URL for R2 (path style, region auto)."""
    moment = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)
    ours = sigv4_presign(
        url="https://acc.r2.cloudflarestorage.com/media/tracks/a%20b.wav",
        access_key="AK",
        secret_key="SK",
        region="auto",
        expires_in=600,
        now=moment,
    )
    session = botocore.session.get_session()
    client = session.create_client(
        "s3",
        region_name="auto",
        endpoint_url="https://acc.r2.cloudflarestorage.com",
        aws_access_key_id="AK",
        aws_secret_access_key="SK",
        config=botocore.config.Config(
            signature_version="s3v4", s3={"addressing_style": "path"}
        ),
    )
    monkeypatch.setattr(
        "botocore.auth.get_current_datetime", lambda *args, **kwargs: moment
    )
    theirs = client.generate_presigned_url(  # type: ignore[attr-defined]
        "get_object", Params={"Bucket": "media", "Key": "tracks/a b.wav"}, ExpiresIn=600
    )
    assert ours == theirs
