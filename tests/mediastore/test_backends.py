"""The media storages behave as Django storages, with the project's rules on top."""

from __future__ import annotations

import hashlib

import pytest
import requests
from django.core.files.base import ContentFile
from django.core.files.storage import storages

from mediastore.backends import LocalMediaStorage, storage_for
from mediastore.s3 import S3MediaStorage

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
