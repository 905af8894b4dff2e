"""Uploads straight to the bucket: the routes of Uppy's @uppy/aws-s3 plugin,
driven with presigned parts against a real S3 server (rclone serve s3)."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from botocore.exceptions import ClientError
from django.core.management import call_command
from django.utils import timezone

import mediastore.s3
from mediastore.backends import s3_storage
from tests.audio import make_audio
from tests.tracks.helpers import assert_error
from tracks.models import Track, UploadSession

BASE = "/api/v1/uploads/s3/multipart"
MiB = 1024 * 1024
PART = 5 * MiB  # S3's smallest part but the last

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def master(tmp_path_factory) -> Path:
    return make_audio(tmp_path_factory.mktemp("s3mp") / "master.wav", seconds=66)


def start(client, master: Path, **metadata) -> dict:
    response = client.post(
        BASE,
        {
            "filename": "master.wav",
            "type": "audio/wav",
            "metadata": {"size": master.stat().st_size, **metadata},
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    return response.json()


def send_part(client, opened: dict, number: int, data: bytes) -> dict:
    signed = client.get(f"{BASE}/{opened['uploadId']}/{number}", {"key": opened["key"]})
    assert signed.status_code == 200, signed.content
    assert signed.json()["expires"] > 0
    put = requests.put(signed.json()["url"], data=data, timeout=60)
    assert put.status_code == 200, put.text
    return {"PartNumber": number, "ETag": put.headers["ETag"]}


def multipart_open(s3, opened: dict) -> bool:
    """Whether the bucket still holds the multipart upload (rclone's server
    does not list multipart uploads; it answers for one)."""
    try:
        s3.list_parts(Bucket=s3.bucket, Key=opened["key"], UploadId=opened["uploadId"])
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "NoSuchUpload":
            return False
        raise
    return True


@pytest.fixture
def server_writes(s3) -> Iterator[list[str]]:
    """The operations by which the server writes objects to the bucket."""
    calls: list[str] = []
    events = s3_storage().client.meta.events
    for operation in ("PutObject", "UploadPart", "CopyObject"):
        events.register(
            f"before-call.s3.{operation}",
            lambda model, **_: calls.append(model.name),
            unique_id=f"test-{operation}",
        )
    yield calls
    for operation in ("PutObject", "UploadPart", "CopyObject"):
        events.unregister(f"before-call.s3.{operation}", unique_id=f"test-{operation}")


def test_parts_go_to_the_bucket_resume_and_become_a_track(
    s3, auth_client, master, django_capture_on_commit_callbacks, server_writes
):
    content = master.read_bytes()
    opened = start(auth_client, master, title="Straight to S3")
    assert opened["key"] == f"uploads/{opened['upload']}"
    parts = [
        send_part(auth_client, opened, n, content[(n - 1) * PART : n * PART])
        for n in (1, 2)
    ]
    # The client went away; back, it asks which parts the bucket holds.
    listed = auth_client.get(f"{BASE}/{opened['uploadId']}", {"key": opened["key"]})
    assert [(p["PartNumber"], p["Size"]) for p in listed.json()] == [
        (1, PART),
        (2, PART),
    ]
    parts.append(send_part(auth_client, opened, 3, content[2 * PART :]))
    with django_capture_on_commit_callbacks(execute=True):
        done = auth_client.post(
            f"{BASE}/{opened['uploadId']}/complete?key={opened['key']}",
            {"parts": parts},
            format="json",
        )
    assert done.status_code == 200, done.content
    assert done.json()["location"].endswith(f"/api/v1/uploads/{opened['upload']}")
    body = auth_client.get(f"/api/v1/uploads/{opened['upload']}").json()
    assert body["status"] == "ready", body
    track = Track.objects.get(pk=body["track"])
    assert track.title == "Straight to S3"
    assert track.sha256 == hashlib.sha256(content).hexdigest()
    assert track.storage_backend == "s3"
    # The bytes went from the client to the bucket, then within it: the
    # server sent none of them.
    assert server_writes == ["CopyObject"]
    stream = auth_client.get(f"/api/v1/tracks/{track.pk}/stream").json()
    assert requests.get(stream["url"], timeout=30).content == content
    # Nothing staged is left: no object under uploads/, no open multipart.
    staged = s3.list_objects_v2(Bucket=s3.bucket, Prefix="uploads/")
    assert staged.get("KeyCount", 0) == 0
    assert not multipart_open(s3, opened)


def test_a_file_too_big_for_one_copy_is_sent_from_the_worker(
    s3,
    auth_client,
    master,
    django_capture_on_commit_callbacks,
    server_writes,
    monkeypatch,
):
    # Past CopyObject's 5 GiB, a copy would take UploadPartCopy, which not
    # every S3 server has: the worker sends the bytes it read instead.
    monkeypatch.setattr(mediastore.s3, "COPY_OBJECT_MAX_BYTES", PART)
    content = master.read_bytes()
    opened = start(auth_client, master)
    parts = [
        send_part(auth_client, opened, n, content[(n - 1) * PART : n * PART])
        for n in (1, 2, 3)
    ]
    with django_capture_on_commit_callbacks(execute=True):
        auth_client.post(
            f"{BASE}/{opened['uploadId']}/complete?key={opened['key']}",
            {"parts": parts},
            format="json",
        )
    body = auth_client.get(f"/api/v1/uploads/{opened['upload']}").json()
    assert body["status"] == "ready", body
    assert "CopyObject" not in server_writes
    assert server_writes
    track = Track.objects.get(pk=body["track"])
    assert track.sha256 == hashlib.sha256(content).hexdigest()


def test_nobody_signs_or_completes_someone_elses_upload(
    s3, auth_client, other_client, master
):
    opened = start(auth_client, master)
    upload_id, key = opened["uploadId"], opened["key"]
    for path in (f"{BASE}/{upload_id}/1", f"{BASE}/{upload_id}"):
        assert_error(other_client.get(path, {"key": key}), 404, "upload_not_found")
    assert_error(
        other_client.post(
            f"{BASE}/{upload_id}/complete?key={key}", {"parts": []}, format="json"
        ),
        404,
        "upload_not_found",
    )
    assert_error(
        other_client.delete(f"{BASE}/{upload_id}?key={key}"), 404, "upload_not_found"
    )
    # Nor the owner with a key the session does not own.
    other_key = auth_client.get(
        f"{BASE}/{upload_id}/1", {"key": "tracks/someone/else.wav"}
    )
    assert_error(other_key, 404, "upload_not_found")


def test_completing_without_every_part_fails_and_leaves_nothing(
    s3, auth_client, master, settings
):
    content = master.read_bytes()
    opened = start(auth_client, master)
    parts = [send_part(auth_client, opened, 1, content[:PART])]
    refused = auth_client.post(
        f"{BASE}/{opened['uploadId']}/complete?key={opened['key']}",
        {"parts": parts},
        format="json",
    )
    assert_error(refused, 409, "upload_length_mismatch")
    session = UploadSession.objects.get(pk=opened["upload"])
    assert (session.status, session.error_code) == ("failed", "upload_length_mismatch")
    assert (
        s3.list_objects_v2(Bucket=s3.bucket, Prefix="uploads/").get("KeyCount", 0) == 0
    )
    assert not Track.objects.exists()


@pytest.mark.parametrize(
    "parts",
    [
        None,
        [],
        [{"PartNumber": "1", "ETag": "x"}],
        [{"PartNumber": 2, "ETag": "a"}, {"PartNumber": 1, "ETag": "b"}],
    ],
)
def test_malformed_part_lists_are_refused(s3, auth_client, master, parts):
    opened = start(auth_client, master)
    refused = auth_client.post(
        f"{BASE}/{opened['uploadId']}/complete?key={opened['key']}",
        {"parts": parts},
        format="json",
    )
    assert_error(refused, 400, "invalid_parts")


def test_abort_ends_the_multipart_upload(s3, auth_client, master):
    content = master.read_bytes()
    opened = start(auth_client, master)
    send_part(auth_client, opened, 1, content[:PART])
    aborted = auth_client.delete(f"{BASE}/{opened['uploadId']}?key={opened['key']}")
    assert aborted.status_code == 200
    assert not multipart_open(s3, opened)
    assert not UploadSession.objects.exists()


def test_sizes_and_backends_that_cannot_take_it(s3, auth_client, master, settings):
    missing_size = auth_client.post(
        BASE, {"filename": "a.wav", "type": "audio/wav"}, format="json"
    )
    assert_error(missing_size, 400, "invalid")
    settings.TRACK_QUOTA_BYTES = MiB
    too_big = auth_client.post(
        BASE, {"filename": "a.wav", "metadata": {"size": 2 * MiB}}, format="json"
    )
    assert_error(too_big, 413, "storage_quota_exceeded")
    settings.TRACK_STORAGE_BACKEND = "local"
    local = auth_client.post(BASE, {"filename": "a.wav", "size": 100}, format="json")
    assert_error(local, 409, "s3_uploads_unavailable")
    assert not UploadSession.objects.exists()


def test_an_abandoned_upload_expires_and_its_parts_go(s3, auth_client, master):
    opened = start(auth_client, master)
    send_part(auth_client, opened, 1, master.read_bytes()[:PART])
    UploadSession.objects.update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    assert_error(
        auth_client.get(f"{BASE}/{opened['uploadId']}/2", {"key": opened["key"]}),
        410,
        "upload_expired",
    )
    call_command("expire_uploads")
    assert not multipart_open(s3, opened)
    assert UploadSession.objects.get().status == "expired"
