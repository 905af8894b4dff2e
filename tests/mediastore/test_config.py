"""The two S3 clients (django-storages/boto3 and obstore) agree on every setting."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import boto3
import obstore
import pytest
from obstore.store import S3Store

from mediastore.backends import s3_storage
from mediastore.config import (
    S3Settings,
    botocore_config,
    django_storages_options,
    obstore_options,
)
from mediastore.digests import digests_of_file
from mediastore.errors import StorageUnavailable
from mediastore.files import SourceFile
from mediastore.s3 import S3MediaStorage
from tests.mediastore.tls import make_certificates
from tests.s3server import start_s3_server

pytestmark = pytest.mark.django_db

BASE = S3Settings(
    bucket="veza-media",
    access_key="key-id",
    secret_key="secret",
    endpoint_url="https://minio.example.test:9000",
    public_endpoint_url=None,
    region="eu-west-3",
    addressing_style="path",
    verify=True,
    max_attempts=4,
    connect_timeout=3.0,
    read_timeout=40.0,
    sign_payload=False,
    checksum_mode="when_required",
    checksum_algorithm="",
    max_pool_connections=16,
    multipart_threshold=64 * 1024 * 1024,
)


def boto3_url(s3: S3Settings, key: str) -> str:
    options = django_storages_options(s3, endpoint_url=s3.endpoint_url)
    client = boto3.session.Session(
        aws_access_key_id=s3.access_key, aws_secret_access_key=s3.secret_key
    ).client(
        "s3",
        endpoint_url=options["endpoint_url"],
        region_name=options["region_name"],
        config=options["client_config"],
    )
    return str(
        client.generate_presigned_url(
            "get_object", Params={"Bucket": s3.bucket, "Key": key}, ExpiresIn=60
        )
    )


def obstore_url(s3: S3Settings, key: str) -> str:
    store = S3Store(**obstore_options(s3))
    return str(obstore.sign(store, "GET", key, timedelta(seconds=60)))


@pytest.mark.parametrize("style", ["path", "virtual"])
@pytest.mark.parametrize(
    "endpoint",
    ["https://minio.example.test:9000", "https://s3.eu-west-3.amazonaws.com"],
)
def test_both_clients_address_the_same_object(style, endpoint):
    s3 = dataclasses.replace(BASE, addressing_style=style, endpoint_url=endpoint)
    key = "tracks/0c6f/abc.wav"
    ours, theirs = urlsplit(obstore_url(s3, key)), urlsplit(boto3_url(s3, key))
    assert (ours.scheme, ours.netloc, ours.path) == (
        theirs.scheme,
        theirs.netloc,
        theirs.path,
    )
    # Both sign for the same region and credentials.
    assert "eu-west-3" in ours.query
    assert "eu-west-3" in theirs.query
    assert "key-id" in ours.query
    assert "key-id" in theirs.query


def test_aws_without_an_endpoint_is_its_regional_host(settings):
    settings.AWS_S3_ENDPOINT_URL = None
    settings.AWS_S3_REGION_NAME = "eu-west-3"
    assert S3Settings.from_settings().endpoint_url == (
        "https://s3.eu-west-3.amazonaws.com"
    )


def test_retries_timeouts_signing_and_identity_carry_over():
    config: Any = botocore_config(BASE)
    options = obstore_options(BASE)
    client = options["client_options"]
    assert config.retries["max_attempts"] == options["retry_config"]["max_retries"] + 1
    assert config.connect_timeout == client["connect_timeout"].total_seconds()
    assert config.read_timeout == client["read_timeout"].total_seconds()
    assert config.user_agent == client["user_agent"]
    assert config.s3["payload_signing_enabled"] is not options["unsigned_payload"]
    assert config.s3["addressing_style"] == "path"
    assert options["virtual_hosted_style_request"] is False
    assert (options["region"], options["bucket"]) == ("eu-west-3", "veza-media")
    assert "allow_http" not in client
    plain = obstore_options(dataclasses.replace(BASE, endpoint_url="http://h:9000"))
    assert plain["client_options"]["allow_http"] is True


def test_both_clients_read_what_the_other_wrote(s3, settings, tmp_path):
    storage = s3_storage()
    source = tmp_path / "take.wav"
    source.write_bytes(b"RIFF" + bytes(range(256)) * 300)
    digests = digests_of_file(source)
    # The native engine writes, django-storages (boto3) reads...
    etag = storage.put_file(
        "tracks/a/take.wav",
        source,
        digests,
        content_type="audio/wav",
        cache_control="public, max-age=60",
    )
    info = storage.stat("tracks/a/take.wav")
    assert info is not None
    assert (info.size, info.sha256, info.etag) == (
        digests.size,
        digests.sha256,
        etag,
    )
    head = s3.head_object(Bucket=s3.bucket, Key="tracks/a/take.wav")
    assert (head["ContentType"], head["CacheControl"]) == (
        "audio/wav",
        "public, max-age=60",
    )
    # ... and the other way round.
    storage.put("tracks/b/take.wav", SourceFile.of(source, content_type="audio/wav"))
    found = storage.transfer.get("tracks/b/take.wav")
    assert found is not None
    chunks, attributes = found
    body = b"".join(chunks)
    assert hashlib.sha256(body).hexdigest() == digests.sha256
    assert attributes["sha256"] == digests.sha256
    assert attributes["content-type"] == "audio/wav"
    # One listing, two clients: the same names, sizes and ETags.
    ours = [(o.key, o.size, o.etag) for o in storage.keys("tracks/")]
    listed = s3.list_objects_v2(Bucket=s3.bucket, Prefix="tracks/")["Contents"]
    assert ours == [(o["Key"], o["Size"], o["ETag"].strip('"')) for o in listed]


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tls")
    ca, cert, key = make_certificates(directory)
    server = start_s3_server(tls=(cert, key))
    boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        region_name="us-east-1",
        verify=str(ca),
    ).create_bucket(Bucket="veza-tls")
    yield server, ca
    server.stop()


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
@pytest.mark.parametrize(
    ("verify", "trusted"), [("system", False), ("ca", True), ("off", True)]
)
def test_both_clients_verify_tls_alike(settings, tls_server, verify, trusted):
    server, ca = tls_server
    settings.AWS_S3_ENABLED = True
    settings.AWS_STORAGE_BUCKET_NAME = "veza-tls"
    settings.AWS_ACCESS_KEY_ID = server.access_key
    settings.AWS_SECRET_ACCESS_KEY = server.secret_key
    settings.AWS_S3_ENDPOINT_URL = server.endpoint
    settings.AWS_S3_MAX_ATTEMPTS = 1
    settings.AWS_S3_VERIFY = {"system": True, "ca": str(ca), "off": False}[verify]
    storage = S3MediaStorage()
    results = []
    for check in (
        lambda: storage.stat("tracks/none.wav"),
        lambda: storage.transfer.head("tracks/none.wav"),
    ):
        try:
            check()
        except StorageUnavailable:
            results.append("refused")
        else:
            results.append("answered")
    assert results == ["answered", "answered"] if trusted else ["refused", "refused"]


def test_a_ca_bundle_path_must_exist(settings, tmp_path):
    settings.AWS_S3_VERIFY = str(tmp_path / "missing.pem")
    with pytest.raises(FileNotFoundError):
        obstore_options(S3Settings.from_settings())


def test_the_public_endpoint_signs_playback_urls(s3, settings):
    settings.AWS_S3_PUBLIC_ENDPOINT_URL = "https://media.example.test"
    url = s3_storage().presigned_url(
        "tracks/x/y.wav", expires_in=60, content_type="audio/wav", disposition=None
    )
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc) == ("https", "media.example.test")
    assert parts.path == f"/{s3.bucket}/tracks/x/y.wav"
