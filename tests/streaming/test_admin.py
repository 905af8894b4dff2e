"""The admin: HLS packages (failures, retry) and takedown of tracks."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings
from django.utils.html import escape

from streaming.backfill import hls_backfill_package
from streaming.models import HlsPackage, PackageStatus
from streaming.services import hls_package_build
from tests.tracks.helpers import assert_error, create_track
from tracks.models import Track

pytestmark = pytest.mark.django_db

PACKAGES_URL = "/admin/streaming/hlspackage/"
TRACKS_URL = "/admin/tracks/track/"


@pytest.fixture
def track(auth_client, wav_file: Path) -> Track:
    body = create_track(auth_client, wav_file.read_bytes(), title="Tone")
    return Track.objects.get(pk=body["id"])


def build(track: Track) -> HlsPackage:
    package = hls_backfill_package(track=track)
    built = hls_package_build(package_id=package.pk)
    assert built is not None
    return built


@pytest.fixture
def failed(track: Track) -> tuple[Track, HlsPackage, bytes]:
    """A package that failed because the stored original is not audio."""
    path = Path(settings.MEDIA_ROOT) / track.storage_key
    original = path.read_bytes()
    path.write_bytes(b"\x00not audio at all\xff" * 256)
    package = build(track)
    assert package.status == PackageStatus.FAILED
    return track, package, original


def test_package_list_shows_a_failed_package_with_its_reason(
    staff_client, failed
) -> None:
    _track, package, _original = failed
    page = staff_client.get(PACKAGES_URL)
    assert page.status_code == 200
    text = page.content.decode()
    assert package.content_hash[:12] in text
    assert "Tone" in text
    assert "unreadable_source" in text
    assert escape(package.error[:100]) in text
    only_failed = staff_client.get(PACKAGES_URL + "?status__exact=failed")
    assert package.content_hash[:12] in only_failed.content.decode()
    only_ready = staff_client.get(PACKAGES_URL + "?status__exact=ready")
    assert package.content_hash[:12] not in only_ready.content.decode()
    by_code = staff_client.get(PACKAGES_URL + "?error_code=unreadable_source")
    assert package.content_hash[:12] in by_code.content.decode()
    for query in ("Tone", package.content_hash[:12], str(package.track_id)):
        found = staff_client.get(PACKAGES_URL, {"q": query}).content.decode()
        assert package.content_hash[:12] in found, query
    assert package.content_hash[:12] not in (
        staff_client.get(PACKAGES_URL, {"q": "nothing like it"}).content.decode()
    )


def test_package_page_is_read_only_and_shows_the_reason(staff_client, failed) -> None:
    _track, package, _original = failed
    url = f"{PACKAGES_URL}{package.pk}/change/"
    page = staff_client.get(url)
    assert page.status_code == 200
    text = page.content.decode()
    assert escape(package.error) in text
    assert 'name="status"' not in text
    assert 'name="error"' not in text
    assert staff_client.post(url, {"status": "ready"}).status_code == 403
    package.refresh_from_db()
    assert package.status == PackageStatus.FAILED
    assert staff_client.get(f"{PACKAGES_URL}add/").status_code == 403


def test_package_again_queues_a_rebuild(
    staff_client, failed, django_capture_on_commit_callbacks
) -> None:
    track, package, original = failed
    # The stored file is repaired; the retry goes through the task workers
    # (the immediate backend runs the task when the transaction commits).
    (Path(settings.MEDIA_ROOT) / track.storage_key).write_bytes(original)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = staff_client.post(
            PACKAGES_URL,
            {"action": "package_again", "_selected_action": [str(package.pk)]},
            follow=True,
        )
    assert response.status_code == 200
    assert "Queued 1 package build(s)" in response.content.decode()
    package.refresh_from_db()
    assert package.status == PackageStatus.PENDING
    assert (package.error_code, package.error) == ("", "")
    for callback in callbacks:
        callback()
    package.refresh_from_db()
    assert package.status == PackageStatus.READY
    assert package.attempts == 2


def test_takedown_asks_for_a_reason_then_answers_451(
    staff_client, auth_client, track
) -> None:
    stream = f"/api/v1/tracks/{track.pk}/stream"
    assert auth_client.get(stream).status_code == 200
    selection = {"action": "take_down", "_selected_action": [str(track.pk)]}

    confirm = staff_client.post(TRACKS_URL, selection)
    assert confirm.status_code == 200
    text = confirm.content.decode()
    assert "Take down tracks" in text
    assert 'name="reason"' in text
    assert "Tone" in text
    track.refresh_from_db()
    assert track.taken_down_at is None

    # A reason is required.
    empty = staff_client.post(TRACKS_URL, {**selection, "apply": "yes", "reason": ""})
    assert empty.status_code == 200
    assert "This field is required" in empty.content.decode()
    track.refresh_from_db()
    assert track.taken_down_at is None

    done = staff_client.post(
        TRACKS_URL,
        {**selection, "apply": "yes", "reason": "DMCA notice #42 from Label Inc."},
        follow=True,
    )
    assert done.status_code == 200
    assert "Took down 1 track(s)" in done.content.decode()
    track.refresh_from_db()
    assert track.taken_down_at is not None
    assert track.takedown_reason == "DMCA notice #42 from Label Inc."
    assert_error(auth_client.get(stream), 451, "track_taken_down")

    listed = staff_client.get(TRACKS_URL, {"taken_down": "yes"}).content.decode()
    assert "Tone" in listed
    available = staff_client.get(TRACKS_URL, {"taken_down": "no"}).content.decode()
    assert f"{track.pk}/change/" not in available
    page = staff_client.get(f"{TRACKS_URL}{track.pk}/change/").content.decode()
    assert "DMCA notice #42 from Label Inc." in page


def test_restore_clears_the_takedown(staff_client, auth_client, track) -> None:
    from tracks.services import track_take_down

    track_take_down(track=track, reason="DMCA")
    response = staff_client.post(
        TRACKS_URL,
        {"action": "restore", "_selected_action": [str(track.pk)]},
        follow=True,
    )
    assert "Restored 1 track(s)" in response.content.decode()
    track.refresh_from_db()
    assert track.taken_down_at is None
    assert track.takedown_reason == ""
    assert auth_client.get(f"/api/v1/tracks/{track.pk}/stream").status_code == 200


def test_track_page_lists_its_packages(staff_client, track, wav_file) -> None:
    package = build(track)
    assert package.status == PackageStatus.READY
    url = f"{TRACKS_URL}{track.pk}/change/"
    page = staff_client.get(url)
    assert page.status_code == 200
    text = page.content.decode()
    assert "HLS packages" in text
    assert f"{PACKAGES_URL}{package.pk}/change/" in text
    assert package.content_hash[:12] in text
    assert "LUFS" in text
    listing = staff_client.get(PACKAGES_URL, {"track__exact": str(track.pk)})
    assert package.content_hash[:12] in listing.content.decode()
    # The list is read-only: saving the track form needs nothing for it.
    saved = staff_client.post(url, {"title": "Renamed", "visibility": "public"})
    assert saved.status_code == 302
    track.refresh_from_db()
    assert track.title == "Renamed"


def test_a_superseded_package_shows_when_it_goes(staff_client, track) -> None:
    from django.test import override_settings

    with override_settings(HLS_LADDER=[96]):
        old = build(track)
    new = build(track)
    assert new.status == PackageStatus.READY
    old.refresh_from_db()
    assert old.superseded_at is not None
    listed = staff_client.get(PACKAGES_URL + "?superseded_at__isempty=0")
    text = listed.content.decode()
    assert old.content_hash[:12] in text
    assert new.content_hash[:12] not in text
    assert "Ready, superseded" in text
    page = staff_client.get(f"{PACKAGES_URL}{old.pk}/change/").content.decode()
    assert "(superseded; the grace period)" in page
    assert "packager 3" in page
    new_page = staff_client.get(f"{PACKAGES_URL}{new.pk}/change/").content.decode()
    assert "segments in media.mp4" in new_page
