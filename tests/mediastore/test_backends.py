"""The media storages behave as Django storages, with the project's rules on top."""

from __future__ import annotations

import hashlib
import os

import pytest
import requests
from django.core.files.base import ContentFile
from django.core.files.storage import storages

import mediastore.s3
from mediastore.backends import LocalMediaStorage, storage_for
from mediastore.errors import StorageUnavailable
from mediastore.files import SourceFile
from mediastore.s3 import S3MediaStorage
from tests.s3proxy import S3Proxy

pytestmark = pytest.mark.django_db


def test_they_are_the_storages_declared_in_settings(s3):
    assert isinstance(storages["media_local"], LocalMediaStorage)
    assert isinstance(storages["media_s3"], S3MediaStorage)
    assert storage_for("local") is storages["media_local"]
    assert storage_for("s3") is storages["media_s3"]
    with pytest.raises(ValueError, match="unknown storage backend"):
        storage_for("ftp")


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_save_keeps_the_name_and_stores_verified_bytes(s3, backend):
    storage = storages[f"media_{backend}"]
    name = "tracks/0b5f6b0c-1d2e-4c3a-9d8e-2f1a0b3c4d5e/take.wav"
    first = ContentFile(b"RIFF first take", name="take.wav")
    assert storage.save(name, first) == name
    # A retry writes the same name again, never a renamed copy.
    assert storage.save(name, ContentFile(b"RIFF second take")) == name
    assert storage.exists(name)
    assert storage.size(name) == len(b"RIFF second take")
    with storage.open(name) as f:
        assert f.read() == b"RIFF second take"
    info = storage_for(backend).stat(name)
    assert info is not None
    assert info.size == len(b"RIFF second take")
    if backend == "s3":
        assert info.sha256 == hashlib.sha256(b"RIFF second take").hexdigest()
        assert info.etag == hashlib.md5(b"RIFF second take").hexdigest()  # noqa: S324
        url = storage.url(name)
        assert requests.get(url, timeout=10).content == b"RIFF second take"
    storage.delete(name)
    assert not storage.exists(name)
    storage.delete(name)  # deleting what is gone is not an error


def test_local_names_cannot_leave_media_root(settings):
    storage = storage_for("local")
    for name in ("../x", "/etc/passwd", "tracks/../../x", "tracks//x"):
        with pytest.raises(ValueError, match="unsafe storage key"):
            storage.local_path(name)


@pytest.mark.parametrize("movable", [True, False])
def test_local_put_moves_a_movable_staged_file_instead_of_copying(
    settings, tmp_path, movable
):
    staged = tmp_path / "var" / "uploads" / "staged.wav"
    staged.parent.mkdir(parents=True)
    content = b"RIFF staged take" * 1000
    staged.write_bytes(content)
    inode = staged.stat().st_ino
    source = SourceFile(
        staged,
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        content_type="audio/wav",
        movable=movable,
    )
    storage = storage_for("local")
    storage.put("tracks/x/staged.wav", source)
    stored = storage.local_path("tracks/x/staged.wav")
    assert stored.read_bytes() == content
    # Moved: the same file (no byte copied) and nothing left behind; else a copy.
    assert (stored.stat().st_ino == inode) is movable
    assert staged.exists() is not movable
    assert not list(stored.parent.glob(".incoming-*"))


@pytest.fixture
def cutting_proxy(s3, s3_server, settings):
    """S3 storage through a proxy that can cut a GET's body mid-way."""
    proxy = S3Proxy(upstream=s3_server.endpoint)
    settings.AWS_S3_ENDPOINT_URL = proxy.start()
    yield proxy
    proxy.stop()


def test_a_download_cut_mid_body_goes_on_from_where_it_stopped(
    s3, cutting_proxy, tmp_path
):
    content = os.urandom(3 * 1024 * 1024 + 17)
    s3.put_object(Bucket=s3.bucket, Key="uploads/cut", Body=content)
    cutting_proxy.faults.cut_gets = 2
    target = tmp_path / "downloaded"

    downloaded = storage_for("s3").download("uploads/cut", target)

    assert cutting_proxy.injected["cut"] == 2
    assert target.read_bytes() == content
    assert downloaded.sha256 == hashlib.sha256(content).hexdigest()
    head = s3.head_object(Bucket=s3.bucket, Key="uploads/cut")
    assert downloaded.etag == head["ETag"]


def test_a_download_that_keeps_failing_is_storage_unavailable(
    s3, cutting_proxy, tmp_path
):
    s3.put_object(Bucket=s3.bucket, Key="uploads/cut", Body=b"x" * 100_000)
    cutting_proxy.faults.cut_gets = 100
    with pytest.raises(StorageUnavailable):
        storage_for("s3").download("uploads/cut", tmp_path / "downloaded")
    assert cutting_proxy.injected["cut"] == mediastore.s3.DOWNLOAD_ATTEMPTS
