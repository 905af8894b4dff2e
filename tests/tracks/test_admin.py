"""The Django admin pages for tracks."""

from __future__ import annotations

import pytest

from tests.tracks.helpers import create_track
from tracks.models import Track

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


@pytest.fixture
def tracks(auth_client, wav_file):
    content = wav_file.read_bytes()
    local = create_track(auth_client, content, title="On disk")
    moved = create_track(auth_client, content, title="In the bucket")
    # A row as the storage migration leaves it.
    Track.objects.filter(pk=moved["id"]).update(storage_backend="s3")
    return local, moved


def test_changelist_filters_by_backend_and_searches(staff_client, tracks):
    page = staff_client.get("/admin/tracks/track/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "On disk" in text
    assert "In the bucket" in text
    assert "Storage overview" in text
    only_s3 = staff_client.get(
        "/admin/tracks/track/?storage_backend__exact=s3"
    ).content.decode()
    assert "In the bucket" in only_s3
    assert "On disk" not in only_s3
    found = staff_client.get("/admin/tracks/track/?q=disk").content.decode()
    assert "On disk" in found
    assert "In the bucket" not in found
    by_owner = staff_client.get(
        f"/admin/tracks/track/?owner__id__exact={Track.objects.first().owner_id}"
    )
    assert by_owner.status_code == 200


def test_storage_fields_are_read_only(staff_client, tracks):
    track = Track.objects.get(title="On disk")
    page = staff_client.get(f"/admin/tracks/track/{track.pk}/change/").content.decode()
    assert 'name="title"' in page
    assert 'name="storage_backend"' not in page
    assert 'name="storage_key"' not in page
    assert track.storage_key in page
    response = staff_client.post(
        f"/admin/tracks/track/{track.pk}/change/",
        {
            "title": "Renamed",
            "visibility": "public",
            "storage_backend": "s3",
            "storage_key": "x",
        },
    )
    assert response.status_code == 302
    track.refresh_from_db()
    assert (track.title, track.storage_backend) == ("Renamed", "local")


def test_storage_overview_counts_rows_and_bytes(staff_client, tracks, wav_file):
    page = staff_client.get("/admin/tracks/track/storage/")
    assert page.status_code == 200
    overview = page.context["overview"]
    size = wav_file.stat().st_size
    assert {b["backend"]: (b["count"], b["bytes"]) for b in overview["backends"]} == {
        "local": (1, size),
        "s3": (1, size),
    }
    assert overview["s3_share_bytes"] == pytest.approx(0.5)
    assert "50.0% of tracks, 50.0% of bytes" in page.content.decode()


def test_admin_pages_need_staff(auth_client, client, user):
    client.force_login(user)
    assert client.get("/admin/tracks/track/storage/").status_code == 302
