"""Uploading tracks through POST /api/v1/tracks/, on local disk."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from django.db import OperationalError
from django.urls import reverse

from tests.audio import make_audio, suffix
from tests.tracks.helpers import LIST_URL, assert_error, upload
from tracks.models import Track

pytestmark = pytest.mark.django_db


def stored_files(settings) -> list[Path]:
    root = Path(settings.MEDIA_ROOT)
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def staging_files(settings) -> list[Path]:
    staging = Path(settings.VAR_DIR) / "uploads"
    return list(staging.iterdir()) if staging.exists() else []


def test_upload_stores_bytes_under_a_deterministic_name(
    auth_client, settings, wav_file
):
    content = wav_file.read_bytes()
    response = upload(auth_client, content, title="First light", visibility="public")
    assert response.status_code == 201, response.content
    body = response.json()
    sha = hashlib.sha256(content).hexdigest()
    assert body["title"] == "First light"
    assert body["visibility"] == "public"
    assert body["sha256"] == sha
    assert body["size_bytes"] == len(content)
    assert body["mime_type"] == "audio/wav"
    assert body["duration_seconds"] == pytest.approx(3.0, abs=0.05)
    assert body["owner"] == "alice"
    assert "storage_backend" not in body
    assert "storage_key" not in body
    track = Track.objects.get(pk=body["id"])
    assert track.storage_backend == "local"
    assert track.storage_key == f"tracks/{track.pk}/{sha}.wav"
    stored = Path(settings.MEDIA_ROOT) / track.storage_key
    assert stored.read_bytes() == content
    assert stored_files(settings) == [stored]
    assert staging_files(settings) == []


@pytest.mark.parametrize(
    ("fmt", "mime"),
    [
        ("flac", "audio/flac"),
        ("mp3", "audio/mpeg"),
        ("ipod", "audio/mp4"),
        ("ogg", "audio/ogg"),
    ],
)
def test_upload_accepts_common_audio_formats(auth_client, audio_dir, fmt, mime):
    path = make_audio(audio_dir / f"fmt.{suffix(fmt)}", fmt=fmt, seconds=2)
    response = upload(
        auth_client,
        path.read_bytes(),
        name=path.name,
        content_type="application/octet-stream",
    )
    assert response.status_code == 201, response.content
    assert response.json()["mime_type"] == mime
    assert response.json()["duration_seconds"] == pytest.approx(2.0, abs=0.1)
    track = Track.objects.get(pk=response.json()["id"])
    assert track.storage_key.endswith("." + suffix(fmt))


def test_title_defaults_to_the_file_name(auth_client, wav_file):
    response = upload(auth_client, wav_file.read_bytes(), name="Morning Raga.wav")
    assert response.json()["title"] == "Morning Raga"
    assert response.json()["visibility"] == "private"


def test_empty_file_is_refused(auth_client, settings):
    response = upload(auth_client, b"")
    assert_error(response, 400, "empty_file")
    assert Track.objects.count() == 0
    assert stored_files(settings) == []
    assert staging_files(settings) == []


def test_truncated_file_is_refused(auth_client, settings, wav_file):
    content = wav_file.read_bytes()
    response = upload(auth_client, content[: len(content) // 2])
    assert_error(response, 415, "truncated_audio")
    assert response.json()["error"]["details"]["declared_seconds"] == pytest.approx(3.0)
    assert Track.objects.count() == 0
    assert stored_files(settings) == []


def test_header_only_file_is_refused(auth_client, wav_file):
    response = upload(auth_client, wav_file.read_bytes()[:44])
    assert response.status_code == 415
    assert response.json()["error"]["code"] in {
        "truncated_audio",
        "undecodable_audio",
        "no_duration",
        "not_audio",
    }
    assert Track.objects.count() == 0


@pytest.mark.parametrize(
    "content",
    [
        b"hello, this is a text file, not a song\n" * 50,
        b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8,
        bytes((i * 7919) % 251 for i in range(8192)),
    ],
    ids=["text", "png", "noise"],
)
def test_non_audio_is_refused_whatever_its_name_says(auth_client, settings, content):
    response = upload(
        auth_client, content, name="hit-single.mp3", content_type="audio/mpeg"
    )
    assert_error(response, 415, "not_audio")
    assert Track.objects.count() == 0
    assert stored_files(settings) == []


def test_lying_extension_and_content_type_are_ignored(auth_client, wav_file):
    response = upload(
        auth_client, wav_file.read_bytes(), name="song.mp3", content_type="image/png"
    )
    assert response.status_code == 201
    assert response.json()["mime_type"] == "audio/wav"
    assert response.json()["original_filename"] == "song.mp3"
    assert Track.objects.get().storage_key.endswith(".wav")


@pytest.mark.parametrize(
    "name", ["../../../etc/evil.wav", "..\\..\\windows\\evil.wav", "/abs/path/evil.wav"]
)
def test_path_traversal_in_file_name_stays_a_label(
    auth_client, settings, wav_file, name
):
    response = upload(auth_client, wav_file.read_bytes(), name=name)
    assert response.status_code == 201, response.content
    assert response.json()["original_filename"] == "evil.wav"
    track = Track.objects.get()
    stored = stored_files(settings)
    assert stored == [Path(settings.MEDIA_ROOT) / track.storage_key]
    assert not (Path(settings.MEDIA_ROOT).parent / "etc").exists()


def test_non_ascii_file_name_is_kept(auth_client, wav_file):
    name = "Café – ßü 音楽 🎵.wav"
    response = upload(auth_client, wav_file.read_bytes(), name=name)
    assert response.status_code == 201, response.content
    assert response.json()["original_filename"] == name
    assert response.json()["title"] == "Café – ßü 音楽 🎵"


def test_upload_over_the_limit_is_413_and_leaves_nothing(
    auth_client, settings, wav_file
):
    settings.TRACK_MAX_UPLOAD_BYTES = 100_000
    response = upload(auth_client, wav_file.read_bytes())
    assert_error(response, 413, "payload_too_large")
    assert response.json()["error"]["details"]["max_bytes"] == 100_000
    assert Track.objects.count() == 0
    assert stored_files(settings) == []
    assert staging_files(settings) == []


def test_upload_needs_authentication(api_client, wav_file):
    response = upload(api_client, wav_file.read_bytes())
    assert_error(response, 401, "not_authenticated")


def test_upload_without_a_file_is_400(auth_client):
    response = auth_client.post(LIST_URL, {"title": "nothing"}, format="multipart")
    assert_error(response, 400, "file_required")


def test_invalid_visibility_is_400(auth_client, wav_file):
    response = upload(auth_client, wav_file.read_bytes(), visibility="everyone")
    assert_error(response, 400, "invalid")
    assert "visibility" in response.json()["error"]["details"]
    assert Track.objects.count() == 0


def test_storage_failure_is_503_and_leaves_nothing(auth_client, settings, wav_file):
    media = Path(settings.MEDIA_ROOT)
    media.mkdir(parents=True)
    # A file where the tracks directory should be: every write fails.
    (media / "tracks").write_bytes(b"in the way")
    response = upload(auth_client, wav_file.read_bytes())
    assert_error(response, 503, "storage_unavailable")
    assert Track.objects.count() == 0
    assert stored_files(settings) == [media / "tracks"]
    assert staging_files(settings) == []


def test_database_failure_after_storing_removes_the_bytes(
    auth_client, settings, wav_file, monkeypatch
):
    def fail(*args, **kwargs):
        raise OperationalError("injected: the database went away")

    monkeypatch.setattr(Track, "save", fail)
    response = upload(auth_client, wav_file.read_bytes())
    monkeypatch.undo()
    assert_error(response, 503, "database_unavailable")
    assert Track.objects.count() == 0
    assert stored_files(settings) == []


def test_upload_memory_does_not_hold_the_file(auth_client, audio_dir):
    """The upload reaches the services as a file on disk, never in memory."""
    path = make_audio(audio_dir / "long.wav", fmt="wav", seconds=30)
    with path.open("rb") as f:
        response = auth_client.post(LIST_URL, {"file": f}, format="multipart")
    assert response.status_code == 201
    assert reverse("tracks-api:list") == LIST_URL


@pytest.mark.parametrize("fmt", ["flac", "ogg"])
def test_audio_longer_than_the_limit_is_422_and_leaves_nothing(
    auth_client, settings, audio_dir, fmt
):
    settings.TRACK_MAX_DURATION_SECONDS = 2
    path = make_audio(audio_dir / f"long3s.{suffix(fmt)}", fmt=fmt, seconds=3)
    response = upload(auth_client, path.read_bytes(), name=path.name)
    assert_error(response, 422, "audio_too_long")
    details = response.json()["error"]["details"]
    assert details["max_seconds"] == 2
    assert details["duration_seconds"] > 2
    assert Track.objects.count() == 0
    assert stored_files(settings) == []
    assert staging_files(settings) == []


def test_a_header_declaring_hours_is_refused_before_reading(
    auth_client, settings, wav_file
):
    """A WAV's data chunk claiming an hour: refused for its length, not
    demuxed to the end and then called truncated."""
    settings.TRACK_MAX_DURATION_SECONDS = 600
    content = bytearray(wav_file.read_bytes())
    data = content.index(b"data")
    byte_rate = int.from_bytes(content[28:32], "little")
    content[data + 4 : data + 8] = (byte_rate * 3600).to_bytes(4, "little")
    response = upload(auth_client, bytes(content))
    assert_error(response, 422, "audio_too_long")
    assert response.json()["error"]["details"]["duration_seconds"] == pytest.approx(
        3600
    )


def test_audio_at_the_limit_is_taken(auth_client, settings, wav_file):
    settings.TRACK_MAX_DURATION_SECONDS = 3
    assert upload(auth_client, wav_file.read_bytes()).status_code == 201
