"""Resumable uploads over tus 1.0.0: a real client (tuspy), the protocol's
refusals, processing into a track and what is left behind (nothing)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from pathlib import Path

import pytest
import requests
from django.core.management import call_command
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from tusclient import client as tus

from tests.audio import make_audio
from tests.tracks.helpers import assert_error
from tracks.models import Track, UploadSession
from tracks.upload_sessions import staging_path

TUS_URL = "/api/v1/uploads/tus/"
TUS = {"HTTP_TUS_RESUMABLE": "1.0.0"}
CHUNK = "application/offset+octet-stream"
MiB = 1024 * 1024

pytestmark = pytest.mark.django_db


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def create(client: APIClient, length: int, **headers: str):
    return client.post(TUS_URL, HTTP_UPLOAD_LENGTH=str(length), **TUS, **headers)


def session_path(response) -> str:
    assert response.status_code == 201, response.content
    return response["Location"].removeprefix("http://testserver")


def patch(client: APIClient, path: str, offset: int, data: bytes, **headers: str):
    return client.generic(
        "PATCH",
        path,
        data,
        content_type=CHUNK,
        HTTP_UPLOAD_OFFSET=str(offset),
        **TUS,
        **headers,
    )


def media_files(settings) -> list[Path]:
    root = Path(settings.MEDIA_ROOT)
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


@pytest.fixture(scope="module")
def master(tmp_path_factory) -> Path:
    """A 12 MiB WAV, as an artist's lossless master (shorter)."""
    return make_audio(tmp_path_factory.mktemp("tus") / "master.wav", seconds=66)


@pytest.mark.django_db(transaction=True)
def test_tuspy_resumes_a_cut_upload_and_the_track_streams_back(
    live_server, user, master
):
    token = Token.objects.create(user=user)
    headers = {"Authorization": f"Token {token.key}"}
    endpoint = f"{live_server.url}{TUS_URL}"
    first = tus.TusClient(endpoint, headers=headers).uploader(
        file_path=str(master),
        chunk_size=MiB,
        metadata={"filename": "master.wav", "title": "The master"},
        upload_checksum=True,
    )
    first.upload(stop_at=6 * MiB)  # the connection "drops" here
    assert first.offset == 6 * MiB
    upload_url = first.url
    session = UploadSession.objects.get()
    assert (session.status, session.offset) == ("receiving", 6 * MiB)

    # A new client (another process, the next day) asks the server where to
    # resume and sends only the rest.
    second = tus.TusClient(endpoint, headers=headers).uploader(
        file_path=str(master), chunk_size=MiB, url=upload_url, upload_checksum=True
    )
    assert second.offset == 6 * MiB
    second.upload()

    api = requests.Session()
    api.headers.update(headers)
    body = api.get(f"{live_server.url}/api/v1/uploads/{session.pk}", timeout=10).json()
    assert body["status"] == "ready", body
    assert (body["offset"], body["length"]) == (master.stat().st_size,) * 2
    assert body["error"] is None
    track = api.get(f"{live_server.url}/api/v1/tracks/{body['track']}/", timeout=10)
    assert track.json()["title"] == "The master"
    assert track.json()["sha256"] == hashlib.sha256(master.read_bytes()).hexdigest()
    stream = api.get(
        f"{live_server.url}/api/v1/tracks/{body['track']}/stream", timeout=10
    ).json()
    assert requests.get(stream["url"], timeout=30).content == master.read_bytes()
    # The staged bytes went when the track was made.
    assert not staging_path(session.pk).exists()


def test_options_announces_version_extensions_and_limits(api_client, settings):
    response = api_client.options(TUS_URL)
    assert response.status_code == 204
    assert response["Tus-Resumable"] == "1.0.0"
    assert response["Tus-Version"] == "1.0.0"
    assert set(response["Tus-Extension"].split(",")) == {
        "creation",
        "creation-with-upload",
        "termination",
        "checksum",
        "expiration",
    }
    assert response["Tus-Max-Size"] == str(settings.TRACK_MAX_UPLOAD_BYTES)
    assert "sha1" in response["Tus-Checksum-Algorithm"].split(",")


def test_requests_need_the_tus_version_and_a_caller(api_client, auth_client):
    refused = auth_client.post(TUS_URL, HTTP_UPLOAD_LENGTH="10")
    assert_error(refused, 412, "tus_version_unsupported")
    assert refused["Tus-Version"] == "1.0.0"
    assert_error(create(api_client, 10), 401, "not_authenticated")


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "invalid_upload_header"),  # no Upload-Length
        ({"HTTP_UPLOAD_LENGTH": "-5"}, "invalid_upload_header"),
        (
            {"HTTP_UPLOAD_LENGTH": "12", "HTTP_UPLOAD_METADATA": "title !!"},
            "invalid_upload_header",
        ),
        (
            {
                "HTTP_UPLOAD_LENGTH": "12",
                "HTTP_UPLOAD_METADATA": f"visibility {b64('world')}",
            },
            "invalid_upload_header",
        ),
        ({"HTTP_UPLOAD_LENGTH": "0"}, "empty_file"),
    ],
)
def test_creation_refuses_bad_headers(auth_client, headers, code):
    assert_error(auth_client.post(TUS_URL, **TUS, **headers), 400, code)
    assert not UploadSession.objects.exists()


def test_creation_refuses_what_cannot_fit(auth_client, settings):
    settings.TRACK_MAX_UPLOAD_BYTES = 1000
    assert_error(create(auth_client, 1001), 413, "payload_too_large")
    settings.TRACK_MAX_UPLOAD_BYTES = 10 * MiB
    settings.TRACK_QUOTA_BYTES = 3 * MiB
    session_path(create(auth_client, 2 * MiB))
    # The open session counts against the quota from its creation on.
    assert_error(create(auth_client, 2 * MiB), 413, "storage_quota_exceeded")
    settings.TRACK_QUOTA_BYTES = 0
    settings.UPLOAD_MAX_OPEN_SESSIONS = 2
    session_path(create(auth_client, MiB))
    assert_error(create(auth_client, MiB), 429, "too_many_uploads")
    assert UploadSession.objects.count() == 2


def test_chunks_go_at_the_servers_offset_only(auth_client, wav_file):
    content = wav_file.read_bytes()
    path = session_path(
        create(
            auth_client, len(content), HTTP_UPLOAD_METADATA=f"filename {b64('a.wav')}"
        )
    )
    head = auth_client.head(path, **TUS)
    assert head.status_code == 200
    assert (head["Upload-Offset"], head["Upload-Length"]) == ("0", str(len(content)))
    assert head["Cache-Control"] == "no-store"
    assert "Upload-Expires" in head

    written = patch(auth_client, path, 0, content[:1000])
    assert written.status_code == 204
    assert written["Upload-Offset"] == "1000"
    # A retry of the same chunk, or a skip ahead: 409 with the real offset.
    for offset in (0, 2000):
        refused = patch(auth_client, path, offset, content[offset : offset + 1000])
        assert_error(refused, 409, "upload_offset_mismatch")
        assert refused.json()["error"]["details"] == {"offset": 1000}
    wrong_type = auth_client.generic(
        "PATCH",
        path,
        b"x",
        content_type="application/json",
        HTTP_UPLOAD_OFFSET="1000",
        **TUS,
    )
    assert_error(wrong_type, 415, "unsupported_media_type")
    too_long = patch(auth_client, path, 1000, content[1000:] + b"extra")
    assert_error(too_long, 413, "upload_length_exceeded")
    assert staging_path(path.rsplit("/", 1)[1]).stat().st_size == 1000


def test_a_chunk_whose_checksum_does_not_match_is_not_kept(auth_client, wav_file):
    content = wav_file.read_bytes()
    path = session_path(create(auth_client, len(content)))
    good = base64.b64encode(
        hashlib.sha1(content[:5000], usedforsecurity=False).digest()
    ).decode()
    bad = base64.b64encode(
        hashlib.sha1(b"other", usedforsecurity=False).digest()
    ).decode()
    refused = patch(
        auth_client, path, 0, content[:5000], HTTP_UPLOAD_CHECKSUM=f"sha1 {bad}"
    )
    assert_error(refused, 460, "checksum_mismatch")
    assert auth_client.head(path, **TUS)["Upload-Offset"] == "0"
    unknown = patch(
        auth_client, path, 0, content[:5000], HTTP_UPLOAD_CHECKSUM=f"crc9 {good}"
    )
    assert_error(unknown, 400, "checksum_algorithm_unsupported")
    kept = patch(
        auth_client, path, 0, content[:5000], HTTP_UPLOAD_CHECKSUM=f"sha1 {good}"
    )
    assert kept["Upload-Offset"] == "5000"


def test_creation_with_upload_and_processing_into_a_track(
    auth_client, wav_file, django_capture_on_commit_callbacks
):
    content = wav_file.read_bytes()
    response = auth_client.post(
        TUS_URL,
        content[:4096],
        content_type=CHUNK,
        HTTP_UPLOAD_LENGTH=str(len(content)),
        HTTP_UPLOAD_METADATA=f"filename {b64('tone.wav')},visibility {b64('public')}",
        **TUS,
    )
    path = session_path(response)
    assert response["Upload-Offset"] == "4096"
    # The last chunk queues the processing task once its write commits.
    with django_capture_on_commit_callbacks(execute=True):
        assert patch(auth_client, path, 4096, content[4096:]).status_code == 204
    upload_id = path.rsplit("/", 1)[1]
    body = auth_client.get(f"/api/v1/uploads/{upload_id}").json()
    assert body["status"] == "ready"
    track = Track.objects.get(pk=body["track"])
    assert (track.title, track.visibility, track.size_bytes) == (
        "tone",
        "public",
        len(content),
    )
    # A finished upload takes no more bytes.
    assert_error(
        patch(auth_client, path, len(content), b"x"), 409, "upload_not_receiving"
    )
    listing = auth_client.get("/api/v1/uploads/").json()
    assert [s["id"] for s in listing["results"]] == [upload_id]


def test_bytes_that_are_not_audio_fail_and_leave_nothing(
    auth_client, settings, django_capture_on_commit_callbacks
):
    junk = b"\x00not audio at all" * 1000
    path = session_path(create(auth_client, len(junk)))
    with django_capture_on_commit_callbacks(execute=True):
        assert patch(auth_client, path, 0, junk).status_code == 204
    upload_id = path.rsplit("/", 1)[1]
    body = auth_client.get(f"/api/v1/uploads/{upload_id}").json()
    assert body["status"] == "failed"
    assert body["error"]["code"] == "not_audio"
    assert body["track"] is None
    assert not Track.objects.exists()
    assert not staging_path(upload_id).exists()
    assert media_files(settings) == []


def test_expired_sessions_are_gone_and_their_bytes_deleted(auth_client, wav_file):
    content = wav_file.read_bytes()
    path = session_path(create(auth_client, len(content)))
    patch(auth_client, path, 0, content[:1000])
    other = session_path(create(auth_client, len(content)))
    patch(auth_client, other, 0, content[:1000])
    UploadSession.objects.update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    # A HEAD answer has no body: the status says it.
    assert auth_client.head(path, **TUS).status_code == 410
    assert_error(patch(auth_client, path, 1000, content[1000:]), 410, "upload_expired")
    call_command("expire_uploads")
    for p in (path, other):
        upload_id = p.rsplit("/", 1)[1]
        assert not staging_path(upload_id).exists()
        assert (
            auth_client.get(f"/api/v1/uploads/{upload_id}").json()["status"]
            == "expired"
        )


def test_termination_deletes_the_session_and_its_bytes(auth_client, wav_file):
    content = wav_file.read_bytes()
    path = session_path(create(auth_client, len(content)))
    patch(auth_client, path, 0, content[:1000])
    upload_id = path.rsplit("/", 1)[1]
    assert auth_client.delete(path, **TUS).status_code == 204
    assert not staging_path(upload_id).exists()
    assert auth_client.head(path, **TUS).status_code == 404
    assert not UploadSession.objects.exists()


def test_another_users_upload_is_not_found(auth_client, other_client, wav_file):
    content = wav_file.read_bytes()
    path = session_path(create(auth_client, len(content)))
    upload_id = path.rsplit("/", 1)[1]
    assert other_client.head(path, **TUS).status_code == 404
    assert_error(patch(other_client, path, 0, content[:100]), 404, "upload_not_found")
    assert_error(other_client.delete(path, **TUS), 404, "upload_not_found")
    assert_error(
        other_client.get(f"/api/v1/uploads/{upload_id}"), 404, "upload_not_found"
    )
    assert auth_client.head(path, **TUS)["Upload-Offset"] == "0"


def test_browser_sessions_need_the_csrf_token(user, wav_file):
    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(user)
    assert_error(create(browser, 100), 403, "permission_denied")


def test_staff_see_uploads_in_progress_and_failures(
    auth_client, staff_client, wav_file, django_capture_on_commit_callbacks
):
    content = wav_file.read_bytes()
    receiving = session_path(
        create(
            auth_client, len(content), HTTP_UPLOAD_METADATA=f"filename {b64('a.wav')}"
        )
    )
    patch(auth_client, receiving, 0, content[: len(content) // 2])
    junk = b"\x00junk" * 100
    failed = session_path(create(auth_client, len(junk)))
    with django_capture_on_commit_callbacks(execute=True):
        patch(auth_client, failed, 0, junk)
    page = staff_client.get("/admin/tracks/uploadsession/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "a.wav" in text
    assert "(50 %)" in text
    assert "not_audio" in text
    detail = staff_client.get(
        f"/admin/tracks/uploadsession/{receiving.rsplit('/', 1)[1]}/change/"
    )
    assert detail.status_code == 200


def test_the_track_is_processing_until_its_task_ends(
    auth_client, other_client, user, wav_file, django_capture_on_commit_callbacks
):
    content = wav_file.read_bytes()
    path = session_path(
        create(
            auth_client,
            len(content),
            HTTP_UPLOAD_METADATA=f"visibility {b64('public')}",
        )
    )
    with django_capture_on_commit_callbacks() as queued:
        assert patch(auth_client, path, 0, content).status_code == 204
    upload = auth_client.get(f"/api/v1/uploads/{path.rsplit('/', 1)[1]}").json()
    assert upload["status"] == "processing"
    track_url = f"/api/v1/tracks/{upload['track']}/"
    assert auth_client.get(track_url).json()["status"] == "processing"
    for kind in ("stream", "download", "hls"):
        assert_error(auth_client.get(f"{track_url}{kind}"), 409, "track_processing")
    auth_client.force_login(user)  # the player page is for browser sessions
    assert auth_client.get(f"/tracks/{upload['track']}/play").status_code == 409
    # Nobody else sees it before it is ready, public or not.
    assert_error(other_client.get(track_url), 404, "track_not_found")
    assert_error(other_client.get(f"{track_url}stream"), 404, "track_not_found")
    listed = [t["id"] for t in other_client.get("/api/v1/tracks/").json()["results"]]
    assert upload["track"] not in listed
    mine = [t["id"] for t in auth_client.get("/api/v1/tracks/").json()["results"]]
    assert upload["track"] in mine
    # Storage, tallies and migrations see only ready tracks.
    assert not Track.objects.exists()

    for callback in queued:
        callback()
    assert auth_client.get(track_url).json()["status"] == "ready"
    assert auth_client.get(f"{track_url}stream").status_code == 200
    assert other_client.get(track_url).status_code == 200
    assert Track.objects.count() == 1


def test_a_track_deleted_while_processing_leaves_nothing(
    auth_client, wav_file, settings, django_capture_on_commit_callbacks
):
    content = wav_file.read_bytes()
    path = session_path(create(auth_client, len(content)))
    with django_capture_on_commit_callbacks() as queued:
        patch(auth_client, path, 0, content)
    upload_id = path.rsplit("/", 1)[1]
    track_id = auth_client.get(f"/api/v1/uploads/{upload_id}").json()["track"]
    assert auth_client.delete(f"/api/v1/tracks/{track_id}/").status_code == 204
    for callback in queued:
        callback()
    body = auth_client.get(f"/api/v1/uploads/{upload_id}").json()
    assert (body["status"], body["error"]["code"]) == ("failed", "track_deleted")
    assert not Track.all_objects.exists()
    assert not staging_path(upload_id).exists()
    assert media_files(settings) == []
