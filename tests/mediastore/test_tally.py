"""The storage tallies follow every write, so nothing has to count rows."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from mediastore.tally import Tally, tally_read, tally_recount
from streaming.attachments import package_tally_count
from streaming.services import PACKAGE_TALLY, hls_package_build, hls_package_request
from tests.audio import make_audio
from tests.streaming.conftest import package_track
from tests.tracks.helpers import create_track
from tracks.models import TRACKS_TALLY, Track
from tracks.selectors import track_tally_count

pytestmark = pytest.mark.django_db(transaction=True)


def assert_tallies_agree() -> None:
    """The kept tallies equal a count from the tables, on every backend."""
    kept = {kind: tally_read(kind=kind) for kind in (TRACKS_TALLY, PACKAGE_TALLY)}
    counted = {
        TRACKS_TALLY: track_tally_count(),
        PACKAGE_TALLY: package_tally_count(),
    }
    for kind, by_backend in kept.items():
        for backend, tally in by_backend.items():
            assert tally == counted[kind].get(backend, Tally()), (kind, backend)


def test_uploads_deletes_moves_and_cascades_keep_the_tallies(
    auth_client, other_client, other_user, s3, settings, wav_file, audio_dir
):
    song_file = make_audio(audio_dir / "tally.flac", fmt="flac", seconds=4)
    settings.TRACK_STORAGE_BACKEND = "local"
    content = wav_file.read_bytes()
    first = create_track(auth_client, content)
    create_track(auth_client, content)
    create_track(other_client, content)
    assert tally_read(kind=TRACKS_TALLY)["local"] == Tally(
        rows=3, bytes=3 * len(content)
    )
    settings.TRACK_STORAGE_BACKEND = "s3"
    create_track(auth_client, content)
    assert_tallies_agree()
    assert auth_client.delete(f"/api/v1/tracks/{first['id']}/").status_code == 204
    assert_tallies_agree()
    settings.TRACK_STORAGE_BACKEND = "local"
    track, package = package_track(auth_client, song_file)
    package.refresh_from_db()
    assert package.status == "ready"
    assert tally_read(kind=PACKAGE_TALLY)["local"].rows == 1
    assert_tallies_agree()
    call_command("migrate_storage", "--to", "s3", stdout=io.StringIO())
    assert tally_read(kind=TRACKS_TALLY)["local"] == Tally()
    assert tally_read(kind=PACKAGE_TALLY)["s3"].rows == 1
    assert_tallies_agree()
    # A forced rebuild takes the package out until it is published again.
    hls_package_request(track=Track.objects.get(pk=track.pk), force=True)
    assert_tallies_agree()
    hls_package_build(package_id=package.pk)
    assert_tallies_agree()
    call_command(
        "migrate_storage",
        "--to",
        "local",
        "--track",
        str(track.pk),
        stdout=io.StringIO(),
    )
    assert_tallies_agree()
    # Deleting a user deletes their tracks (and packages) by cascade.
    other_user.delete()
    get_user_model().objects.get(username="alice").delete()
    assert_tallies_agree()
    assert tally_read(kind=TRACKS_TALLY) == {"local": Tally(), "s3": Tally()}


def test_recount_repairs_changes_made_outside_the_app(auth_client, wav_file):
    create_track(auth_client, wav_file.read_bytes())
    Track.objects.update(storage_backend="s3")  # behind the app's back
    assert tally_read(kind=TRACKS_TALLY)["local"].rows == 1
    out = io.StringIO()
    call_command("storage_tally", "--recount", stdout=out)
    assert "tracks" in out.getvalue()
    assert tally_read(kind=TRACKS_TALLY)["s3"].rows == 1
    assert_tallies_agree()
    tally_recount()
    assert_tallies_agree()


def test_storage_tally_prints_json(auth_client, wav_file):
    import json

    create_track(auth_client, wav_file.read_bytes())
    out = io.StringIO()
    call_command("storage_tally", "--json", stdout=out)
    data = json.loads(out.getvalue())
    assert data["tracks"]["local"]["rows"] == 1
    assert data["tracks"]["s3"] == {"rows": 0, "files": 0, "bytes": 0}
