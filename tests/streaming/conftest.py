"""Fixtures of the HLS tests: a packaged track on local disk or S3."""

from __future__ import annotations

from pathlib import Path

import pytest

from streaming.models import HlsPackage, PackageStatus
from tests.audio import make_audio
from tests.tracks.helpers import create_track
from tracks.models import Track


@pytest.fixture(scope="session")
def song_file(audio_dir: Path) -> Path:
    """14 s of FLAC: three 6 s segments per rung, the last one short."""
    return make_audio(audio_dir / "song.flac", fmt="flac", seconds=14, rate=44100)


def package_track(client, path: Path, **fields) -> tuple[Track, HlsPackage]:
    """Upload `path` with packaging on upload, as a user's client would."""
    from django.test import override_settings

    with override_settings(HLS_PACKAGE_ON_UPLOAD=True):
        body = create_track(client, path.read_bytes(), **fields)
    track = Track.objects.get(pk=body["id"])
    package = HlsPackage.objects.get(track=track)
    return track, package


@pytest.fixture
def packaged(auth_client, song_file: Path, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        track, package = package_track(
            auth_client, song_file, title="Song", visibility="public"
        )
    package.refresh_from_db()
    assert package.status == PackageStatus.READY, package.error
    return track, package
