"""Tracks on a real S3 server (`rclone serve s3`): upload, presigned playback."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
import requests

from mediastore.backends import storage_for
from tests.s3server import free_port
from tests.tracks.helpers import assert_error, create_track, upload
from tracks.models import Track

pytestmark = pytest.mark.django_db


def sent_headers(operation: str) -> list[dict[str, str]]:
    """Headers of every `operation` request the track storage sends from now."""
    sent: list[dict[str, str]] = []

    def record(request, **kwargs) -> None:
        sent.append(
            {
                # Lower case: botocore's casing varies with how the client
                # was built; HTTP header names are case-insensitive.
                k.lower(): v.decode() if isinstance(v, bytes) else v
                for k, v in request.headers.items()
            }
        )

    storage_for("s3").client.meta.events.register(  # type: ignore[attr-defined]
        f"before-send.s3.{operation}", record
    )
    return sent


def bucket_keys(s3) -> list[str]:
    listing = s3.list_objects_v2(Bucket=s3.bucket)
    return [o["Key"] for o in listing.get("Contents", [])]


def test_upload_to_s3_stores_a_verified_object(auth_client, s3, settings, wav_file):
    content = wav_file.read_bytes()
    body = create_track(auth_client, content)
    track = Track.objects.get(pk=body["id"])
    sha = hashlib.sha256(content).hexdigest()
    assert track.storage_backend == "s3"
    assert track.storage_key == f"tracks/{track.pk}/{sha}.wav"
    head = s3.head_object(Bucket=s3.bucket, Key=track.storage_key)
    assert head["ContentLength"] == len(content)
    assert {k.lower(): v for k, v in head["Metadata"].items()} == {"sha256": sha}
    assert head["ContentType"] == "audio/wav"
    assert bucket_keys(s3) == [track.storage_key]
    # Nothing of it on local disk.
    media = Path(settings.MEDIA_ROOT)
    assert not media.exists() or not any(p.is_file() for p in media.rglob("*"))


def test_presigned_stream_url_serves_the_bytes(auth_client, s3, wav_file):
    content = wav_file.read_bytes()
    track = create_track(auth_client, content)
    response = auth_client.get(f"/api/v1/tracks/{track['id']}/stream")
    assert response.status_code == 200
    body = response.json()
    assert body["source"] == "s3"
    assert body["url"].startswith(s3.meta.endpoint_url)
    fetched = requests.get(body["url"], timeout=10)
    assert fetched.status_code == 200
    assert fetched.content == content
    assert fetched.headers["Content-Type"] == "audio/wav"


def test_presigned_download_url_names_the_file(auth_client, s3, wav_file):
    track = create_track(auth_client, wav_file.read_bytes(), name="Ünïcode song.wav")
    body = auth_client.get(f"/api/v1/tracks/{track['id']}/download").json()
    fetched = requests.get(body["url"], timeout=10)
    assert fetched.status_code == 200
    disposition = fetched.headers["Content-Disposition"]
    assert disposition.startswith("attachment")
    assert "filename*=utf-8''%C3%9Cn%C3%AFcode%20song.wav" in disposition


def test_tampered_presigned_url_is_refused(auth_client, s3, wav_file):
    track = create_track(auth_client, wav_file.read_bytes())
    url = auth_client.get(f"/api/v1/tracks/{track['id']}/stream").json()["url"]
    signature = url.split("X-Amz-Signature=")[1][:64]
    flipped = ("0" if signature[0] != "0" else "1") + signature[1:]
    assert requests.get(url.replace(signature, flipped), timeout=10).status_code == 403
    other_key = url.replace(track["id"], "00000000-0000-0000-0000-000000000000")
    assert requests.get(other_key, timeout=10).status_code == 403


def test_presigned_url_is_signed_for_the_public_endpoint(
    auth_client, s3, settings, wav_file
):
    track = create_track(auth_client, wav_file.read_bytes())
    settings.AWS_S3_PUBLIC_ENDPOINT_URL = "https://media.veza.example"
    url = auth_client.get(f"/api/v1/tracks/{track['id']}/stream").json()["url"]
    assert url.startswith("https://media.veza.example/")


def test_unreachable_s3_is_503_and_leaves_nothing(auth_client, s3, settings, wav_file):
    settings.AWS_S3_ENDPOINT_URL = f"http://127.0.0.1:{free_port()}"
    response = upload(auth_client, wav_file.read_bytes())
    assert_error(response, 503, "storage_unavailable")
    assert Track.objects.count() == 0
    assert bucket_keys(s3) == []


def test_rows_on_either_backend_play(auth_client, s3, settings, wav_file):
    """New uploads follow TRACK_STORAGE_BACKEND; older rows still play."""
    content = wav_file.read_bytes()
    on_s3 = create_track(auth_client, content)
    settings.TRACK_STORAGE_BACKEND = "local"
    on_local = create_track(auth_client, content)
    sources = {
        t["id"]: auth_client.get(f"/api/v1/tracks/{t['id']}/stream").json()["source"]
        for t in (on_s3, on_local)
    }
    assert sources == {on_s3["id"]: "s3", on_local["id"]: "origin"}


def test_delete_removes_the_object_after_commit(
    auth_client, s3, wav_file, django_capture_on_commit_callbacks
):
    track = create_track(auth_client, wav_file.read_bytes())
    assert len(bucket_keys(s3)) == 1
    with django_capture_on_commit_callbacks(execute=True):
        response = auth_client.delete(f"/api/v1/tracks/{track['id']}/")
    assert response.status_code == 204
    assert bucket_keys(s3) == []
    assert Track.objects.count() == 0


def test_large_uploads_go_multipart_and_verify(auth_client, s3, settings, audio_dir):
    from tests.audio import make_audio

    settings.AWS_S3_MULTIPART_THRESHOLD = 256 * 1024
    content = make_audio(
        audio_dir / "long-multipart.wav", fmt="wav", seconds=30
    ).read_bytes()
    parts = sent_headers("UploadPart")
    track = Track.objects.get(pk=create_track(auth_client, content)["id"])
    # One part (under the 16 MiB part size), carrying the file's Content-MD5.
    md5 = base64.b64encode(hashlib.md5(content).digest()).decode()  # noqa: S324
    assert [part["content-md5"] for part in parts] == [md5]
    head = s3.head_object(Bucket=s3.bucket, Key=track.storage_key)
    assert head["ContentLength"] == len(content)
    assert {k.lower(): v for k, v in head["Metadata"].items()} == {
        "sha256": track.sha256
    }
    body = s3.get_object(Bucket=s3.bucket, Key=track.storage_key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == track.sha256


@pytest.mark.parametrize("signed", [False, True])
def test_a_put_signs_its_payload_only_when_configured(
    auth_client, s3, settings, wav_file, signed
):
    settings.AWS_S3_SIGN_PAYLOAD = signed
    sent = sent_headers("PutObject")
    content = wav_file.read_bytes()
    create_track(auth_client, content)
    [headers] = sent
    md5 = base64.b64encode(hashlib.md5(content).digest()).decode()  # noqa: S324
    assert headers["content-md5"] == md5
    assert headers["user-agent"].startswith("veza-media/")
    assert headers["x-amz-content-sha256"] == (
        hashlib.sha256(content).hexdigest() if signed else "UNSIGNED-PAYLOAD"
    )
