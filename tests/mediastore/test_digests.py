"""Digests in one read, and what an S3 ETag proves about a file's bytes."""

from __future__ import annotations

import base64
import hashlib
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mediastore.digests import (
    Hasher,
    MiB,
    digests_of_bytes,
    digests_of_file,
    etag_value,
    etag_verifies,
    etag_verifies_file,
    multipart_etag,
)


def test_digests_of_a_file_are_those_of_its_bytes(tmp_path):
    data = random.Random(1).randbytes(3 * 1024 * 1024 + 17)
    path = tmp_path / "f"
    path.write_bytes(data)
    digests = digests_of_file(path)
    assert digests.size == len(data)
    assert digests.sha256 == hashlib.sha256(data).hexdigest()
    assert digests.md5_hex == hashlib.md5(data).hexdigest()  # noqa: S324
    assert digests.md5_base64 == base64.b64encode(hashlib.md5(data).digest()).decode()  # noqa: S324


@given(
    data=st.binary(min_size=0, max_size=5000),
    part_size=st.integers(min_value=1, max_value=700),
    cuts=st.lists(st.integers(min_value=0, max_value=5000), max_size=6),
)
def test_part_md5s_do_not_depend_on_how_the_bytes_arrive(data, part_size, cuts):
    hasher = Hasher(part_size)
    start = 0
    for cut in sorted(cuts):
        hasher.update(data[start:cut])
        start = max(start, cut)
    hasher.update(data[start:])
    parts = [data[i : i + part_size] for i in range(0, len(data), part_size)] or [b""]
    assert hasher.digests().part_md5s == tuple(
        hashlib.md5(p).digest()  # noqa: S324
        for p in parts
    )


def test_a_multipart_etag_is_the_md5_of_the_part_md5s():
    data = b"a" * 10 + b"b" * 10 + b"c" * 5
    digests = digests_of_bytes(data, part_size=10)
    joined = b"".join(hashlib.md5(p).digest() for p in (b"a" * 10, b"b" * 10, b"c" * 5))  # noqa: S324
    expected = f"{hashlib.md5(joined).hexdigest()}-3"  # noqa: S324
    assert multipart_etag(digests.part_md5s) == expected
    assert etag_verifies(f'"{expected}"', digests)
    assert not etag_verifies(expected.replace("-3", "-4"), digests)
    # Some servers give a multipart object the MD5 of the whole.
    assert etag_verifies(hashlib.md5(data).hexdigest(), digests)  # noqa: S324


def test_an_etag_of_other_bytes_proves_nothing():
    digests = digests_of_bytes(b"hello")
    assert etag_verifies(hashlib.md5(b"hello").hexdigest().upper(), digests)  # noqa: S324
    assert not etag_verifies(hashlib.md5(b"hellO").hexdigest(), digests)  # noqa: S324
    assert not etag_verifies("", digests)
    assert not etag_verifies(None, digests)
    assert etag_value(' "AbC" ') == "abc"


@pytest.mark.parametrize("part_size", [5 * MiB, 8 * MiB, 16 * MiB, 6 * MiB])
def test_a_files_multipart_etag_is_found_for_common_part_sizes(tmp_path, part_size):
    data = random.Random(2).randbytes(part_size * 2 + 1234)
    path = tmp_path / "f"
    path.write_bytes(data)
    etag = multipart_etag(digests_of_bytes(data, part_size=part_size).part_md5s)
    assert etag_verifies_file(etag, path)
    changed = bytearray(data)
    changed[-1] ^= 1
    path.write_bytes(bytes(changed))
    assert not etag_verifies_file(etag, path)
