"""Shared fixtures: users, API clients, audio files and a real S3 server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import hypothesis
import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.audio import make_audio
from tests.s3server import S3Server, start_s3_server

# Wall-clock deadlines fail at random on a loaded 2-core CI machine; the
# property tests check behaviour, the benchmarks measure speed.
hypothesis.settings.register_profile("veza", deadline=None)
hypothesis.settings.load_profile("veza")


@pytest.fixture(autouse=True)
def _isolated_storage(settings, tmp_path: Path) -> None:
    """Every test gets its own MEDIA_ROOT and staging area, on local storage."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.VAR_DIR = tmp_path / "var"
    settings.TRACK_STORAGE_BACKEND = "local"


@pytest.fixture
def user(db):
    return get_user_model().objects.create_user(
        "alice", "alice@example.com", "alice-pass-123"
    )


@pytest.fixture
def other_user(db):
    return get_user_model().objects.create_user(
        "bob", "bob@example.com", "bob-pass-123"
    )


@pytest.fixture
def staff_user(db):
    return get_user_model().objects.create_superuser(
        "staff", "staff@example.com", "staff-pass-123"
    )


@pytest.fixture
def staff_client(client, staff_user):
    """Django's test client, logged in as staff (the admin's pages)."""
    client.force_login(staff_user)
    return client


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


def token_client(user) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def auth_client(user) -> APIClient:
    return token_client(user)


@pytest.fixture
def other_client(other_user) -> APIClient:
    return token_client(other_user)


@pytest.fixture(scope="session")
def audio_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("audio")


@pytest.fixture(scope="session")
def wav_file(audio_dir: Path) -> Path:
    return make_audio(audio_dir / "tone.wav", fmt="wav", seconds=3)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    server = start_s3_server()
    yield server
    server.stop()


def use_s3(settings, server: S3Server):
    """Switch tracks to S3 on `server`, with a fresh bucket; the boto3
    client, its `bucket` set."""
    bucket = f"veza-{uuid.uuid4().hex[:12]}"
    client = boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=bucket)
    settings.AWS_S3_ENABLED = True
    settings.AWS_STORAGE_BUCKET_NAME = bucket
    settings.AWS_ACCESS_KEY_ID = server.access_key
    settings.AWS_SECRET_ACCESS_KEY = server.secret_key
    settings.AWS_S3_ENDPOINT_URL = server.endpoint
    settings.AWS_S3_PUBLIC_ENDPOINT_URL = None
    settings.AWS_S3_MAX_ATTEMPTS = 2
    settings.TRACK_STORAGE_BACKEND = "s3"
    client.bucket = bucket  # type: ignore[attr-defined]
    return client


@pytest.fixture
def s3(settings, s3_server: S3Server):
    """Switch tracks to S3 on the test server, with a fresh bucket."""
    return use_s3(settings, s3_server)


@pytest.fixture
def s3_local(s3, settings):
    """S3 configured, but uploads (and their packages) still on local disk."""
    settings.TRACK_STORAGE_BACKEND = "local"
    return s3
