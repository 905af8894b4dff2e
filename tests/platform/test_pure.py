"""Unit tests of the pure parts: ranges, origin tokens, configuration rules."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdn.origin import origin_token, origin_token_valid
from veza import config
from veza.http_ranges import RangeNotSatisfiable, parse_range


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("bytes=0-0", (0, 0)),
        ("bytes=0-99", (0, 99)),
        ("bytes=90-", (90, 99)),
        ("bytes=-10", (90, 99)),
        ("bytes=-1000", (0, 99)),
        ("bytes=50-5000", (50, 99)),
        ("bytes=5-1", None),
        ("bytes=0-1,5-6", None),
        ("items=0-1", None),
        ("bytes=-", None),
        ("bytes=abc-", None),
    ],
)
def test_parse_range(header, expected):
    assert parse_range(header, 100) == expected


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=100-200", "bytes=-0"])
def test_unsatisfiable_ranges(header):
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, 100)


@given(
    size=st.integers(1, 10**12),
    first=st.integers(0, 10**12),
    length=st.integers(1, 10**6),
)
def test_any_satisfiable_range_lies_inside_the_file(size, first, length):
    try:
        result = parse_range(f"bytes={first}-{first + length - 1}", size)
    except RangeNotSatisfiable:
        assert first >= size
        return
    assert result is not None
    assert 0 <= result[0] <= result[1] < size


@given(path=st.text(min_size=1, max_size=200), delta=st.integers(1, 10**6))
def test_origin_tokens_verify_only_their_path_and_expiry(path, delta):
    # A fixed "now": with delta 1 a slow example would otherwise expire.
    now = int(time.time())
    expires = now + delta
    token = origin_token(path, expires)
    assert "=" not in token
    assert origin_token_valid(path, expires, token, now=now)
    assert not origin_token_valid(path + "x", expires, token, now=now)
    assert not origin_token_valid(path, expires + 1, token, now=now)
    assert not origin_token_valid(
        path, expires, token[:-1] + ("A" if token[-1] != "A" else "B"), now=now
    )


def test_expired_origin_token_is_refused():
    expires = int(time.time()) - 1
    assert not origin_token_valid("/a", expires, origin_token("/a", expires))


def raw(**overrides) -> config.RawConfig:
    values = {
        "veza_env": "development",
        "debug": False,
        "allowed_hosts": ["veza.example"],
        "secret_key": "Zq8-production-like-secret-for-tests-9fT3kLmN0pQrStUvWxYz",
        "track_storage_backend": "local",
        "s3_enabled": False,
        "s3_bucket": "",
        "s3_access_key": "",
        "s3_secret_key": "",
        "redis_url": "redis://127.0.0.1:6379/0",
    }
    return config.RawConfig(**{**values, **overrides})


S3_OK = {
    "s3_enabled": True,
    "s3_bucket": "b",
    "s3_access_key": "a",
    "s3_secret_key": "s",
}


@pytest.mark.parametrize("value", ["S3", "minio", " s3", "s3 ", "", "Local"])
def test_storage_backend_must_be_exactly_local_or_s3(value):
    resolved = config.resolve(raw(track_storage_backend=value, **S3_OK))
    assert [p.id for p in resolved.problems] == ["veza.E002"]
    assert resolved.track_storage_backend == "local"


def test_s3_backend_with_s3_configured_is_used():
    resolved = config.resolve(raw(track_storage_backend="s3", **S3_OK))
    assert resolved.problems == []
    assert resolved.track_storage_backend == "s3"


def test_s3_backend_without_s3_enabled_falls_back():
    resolved = config.resolve(
        raw(track_storage_backend="s3", **{**S3_OK, "s3_enabled": False})
    )
    assert [p.id for p in resolved.problems] == ["veza.E003"]
    assert resolved.track_storage_backend == "local"


def test_s3_without_bucket_or_credentials_names_them():
    resolved = config.resolve(
        raw(track_storage_backend="s3", s3_enabled=True, s3_bucket="b")
    )
    assert [p.id for p in resolved.problems] == ["veza.E004"]
    assert resolved.problems[0].variable == "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY"
    assert resolved.track_storage_backend == "local"


def test_production_rules():
    resolved = config.resolve(
        raw(veza_env="production", debug=True, allowed_hosts=[], secret_key="")
    )
    assert [p.id for p in resolved.problems] == ["veza.E005", "veza.E006", "veza.E007"]
    assert all(config.is_fatal(p, veza_env="production") for p in resolved.problems)
    assert not any(config.is_fatal(p, veza_env="staging") for p in resolved.problems)


@pytest.mark.parametrize(
    "secret_key",
    ["a" * 32, "abcd" * 16, "short-but-random-9fT3", "django-insecure-" + "x1y2z3" * 8],
)
def test_a_weak_secret_key_stops_production_and_warns_in_staging(secret_key):
    for env in ("production", "staging"):
        resolved = config.resolve(raw(veza_env=env, secret_key=secret_key))
        assert [p.id for p in resolved.problems] == ["veza.E007"]
    assert config.resolve(raw(secret_key=secret_key)).problems == []


@pytest.mark.parametrize("hosts", [["*"], ["veza.example", "*"], []])
def test_any_host_stops_production(hosts):
    resolved = config.resolve(raw(veza_env="production", allowed_hosts=hosts))
    assert [p.id for p in resolved.problems] == ["veza.E006"]


def test_production_needs_a_shared_cache():
    resolved = config.resolve(raw(veza_env="production", redis_url=""))
    assert [p.id for p in resolved.problems] == ["veza.E020"]
    staging = config.resolve(raw(veza_env="staging", redis_url=""))
    assert not config.is_fatal(staging.problems[0], veza_env="staging")
    assert config.resolve(raw(redis_url="")).problems == []


def test_staging_warns_about_debug():
    resolved = config.resolve(raw(veza_env="staging", debug=True))
    assert [p.id for p in resolved.problems] == ["veza.E005"]
    assert not config.is_fatal(resolved.problems[0], veza_env="staging")
    assert config.resolve(raw(debug=True)).problems == []


def test_unknown_environment_is_fatal_everywhere():
    resolved = config.resolve(raw(veza_env="prod"))
    assert [p.id for p in resolved.problems] == ["veza.E001"]
    assert config.is_fatal(resolved.problems[0], veza_env="prod")


@pytest.mark.parametrize(
    ("header", "key"),
    [
        (
            "Token 9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b",
            "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b",
        ),
        ("Token abc", "abc"),
        ("Token", None),
        ("Token ", None),
        ("Token  abc", None),
        ("Token abc def", None),
        ("Token abc\tdef", None),
        ("Token abcé", None),
        ("token abc", None),
        ("Bearer abc", None),
        ("", None),
    ],
)
def test_token_key_takes_only_the_plain_header(header, key):
    """Anything but "Token <letters and digits>" is left to DRF's parser."""
    from veza.authentication import token_key

    assert token_key(header) == key
