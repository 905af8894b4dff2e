"""Per-user storage quota and daily upload limits: API, refusals, admin."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import pytest
import requests
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.utils import timezone
from rest_framework.authtoken.models import Token

from tests.tracks.helpers import LIST_URL, assert_error, create_track, upload
from tracks.models import Track, UploadQuota
from tracks.quotas import next_utc_midnight

QUOTA_URL = "/api/v1/uploads/quota"

pytestmark = pytest.mark.django_db


def stored_files(settings) -> list[Path]:
    root = Path(settings.MEDIA_ROOT)
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_quota_shows_the_site_limits_and_usage(auth_client, wav_file, settings):
    settings.TRACK_QUOTA_BYTES = 10_000_000
    settings.TRACK_DAILY_UPLOAD_BYTES = 0  # no limit
    settings.TRACK_DAILY_UPLOAD_TRACKS = 5
    fresh = auth_client.get(QUOTA_URL)
    assert fresh.status_code == 200
    assert fresh.json() == {
        "storage_bytes_limit": 10_000_000,
        "stored_bytes": 0,
        "daily_bytes_limit": None,
        "day_bytes": 0,
        "daily_tracks_limit": 5,
        "day_tracks": 0,
        "open_uploads": 0,
        "open_upload_bytes": 0,
        "resets_at": next_utc_midnight(timezone.now())
        .isoformat()
        .replace("+00:00", "Z"),
    }
    size = wav_file.stat().st_size
    create_track(auth_client, wav_file.read_bytes())
    create_track(auth_client, wav_file.read_bytes())
    body = auth_client.get(QUOTA_URL).json()
    assert body["stored_bytes"] == 2 * size
    assert body["day_bytes"] == 2 * size
    assert body["day_tracks"] == 2


def test_quota_needs_a_caller(api_client):
    assert_error(api_client.get(QUOTA_URL), 401, "not_authenticated")


def test_storage_quota_refuses_the_upload_that_would_not_fit(
    auth_client, wav_file, settings
):
    size = wav_file.stat().st_size
    # Room for the body's declared length less the multipart framing, not
    # for the file: the exact check, after the bytes were stored, refuses.
    settings.TRACK_QUOTA_BYTES = 3 * size - 30_000
    first = create_track(auth_client, wav_file.read_bytes())
    create_track(auth_client, wav_file.read_bytes())
    refused = upload(auth_client, wav_file.read_bytes())
    assert_error(refused, 413, "storage_quota_exceeded")
    assert refused.json()["error"]["details"] == {
        "storage_bytes_limit": 3 * size - 30_000,
        "stored_bytes": 2 * size,
        "open_upload_bytes": 0,
        "upload_bytes": size,
    }
    # No row and no bytes for the refused upload.
    assert Track.objects.count() == 2
    assert len(stored_files(settings)) == 2
    # Deleting a track frees its room.
    assert auth_client.delete(f"{LIST_URL}{first['id']}/").status_code == 204
    assert auth_client.get(QUOTA_URL).json()["stored_bytes"] == size
    create_track(auth_client, wav_file.read_bytes())


def test_quota_counts_tracks_from_before_the_quota_existed(
    auth_client, user, wav_file, settings
):
    size = wav_file.stat().st_size
    create_track(auth_client, wav_file.read_bytes())
    # As if the track came before this feature: no quota row yet.
    UploadQuota.objects.all().delete()
    assert auth_client.get(QUOTA_URL).json()["stored_bytes"] == size
    settings.TRACK_QUOTA_BYTES = 2 * size - 30_000  # passes the early check
    assert_error(
        upload(auth_client, wav_file.read_bytes()), 413, "storage_quota_exceeded"
    )
    settings.TRACK_QUOTA_BYTES = 2 * size
    create_track(auth_client, wav_file.read_bytes())
    assert UploadQuota.objects.get(user=user).stored_bytes == 2 * size


def test_daily_track_limit_refuses_until_midnight_utc(
    auth_client, user, wav_file, settings
):
    settings.TRACK_DAILY_UPLOAD_TRACKS = 2
    first = create_track(auth_client, wav_file.read_bytes())
    create_track(auth_client, wav_file.read_bytes())
    refused = upload(auth_client, wav_file.read_bytes())
    assert_error(refused, 429, "daily_track_limit")
    seconds = (next_utc_midnight(timezone.now()) - timezone.now()).total_seconds()
    assert abs(int(refused["Retry-After"]) - seconds) <= 5
    details = refused.json()["error"]["details"]
    assert details["daily_tracks_limit"] == 2
    assert details["day_tracks"] == 2
    # Deleting does not give the day's allowance back.
    auth_client.delete(f"{LIST_URL}{first['id']}/")
    assert_error(upload(auth_client, wav_file.read_bytes()), 429, "daily_track_limit")
    # The next UTC day starts again from zero.
    UploadQuota.objects.filter(user=user).update(
        day=timezone.now().date() - dt.timedelta(days=1)
    )
    assert auth_client.get(QUOTA_URL).json()["day_tracks"] == 0
    create_track(auth_client, wav_file.read_bytes())


def test_daily_byte_limit(auth_client, wav_file, settings):
    size = wav_file.stat().st_size
    settings.TRACK_DAILY_UPLOAD_BYTES = size + 1000
    create_track(auth_client, wav_file.read_bytes())
    refused = upload(auth_client, wav_file.read_bytes())
    assert_error(refused, 429, "daily_byte_limit")
    assert refused.json()["error"]["details"]["day_bytes"] == size
    assert "Retry-After" in refused


def test_limits_are_per_user(auth_client, other_client, wav_file, settings):
    settings.TRACK_DAILY_UPLOAD_TRACKS = 1
    create_track(auth_client, wav_file.read_bytes())
    assert_error(upload(auth_client, wav_file.read_bytes()), 429, "daily_track_limit")
    create_track(other_client, wav_file.read_bytes())


def test_a_declared_length_that_cannot_fit_is_refused_unread(
    auth_client, wav_file, settings
):
    """The view refuses by Content-Length before the body is parsed: the test
    client's input raises if read past what was sent, so reading 100 MB of a
    600 KB body would fail the test, not answer 413."""
    settings.TRACK_QUOTA_BYTES = 50_000_000
    response = auth_client.post(
        LIST_URL,
        {"file": SimpleUploadedFile("tone.wav", wav_file.read_bytes())},
        format="multipart",
        CONTENT_LENGTH="100000000",
    )
    assert_error(response, 413, "storage_quota_exceeded")
    assert not (Path(settings.VAR_DIR) / "uploads").exists() or not any(
        (Path(settings.VAR_DIR) / "uploads").iterdir()
    )


def test_staff_set_a_users_own_limits_in_the_admin(
    staff_client, auth_client, user, wav_file, settings
):
    settings.TRACK_DAILY_UPLOAD_TRACKS = 100
    size = wav_file.stat().st_size
    create_track(auth_client, wav_file.read_bytes())
    page = staff_client.get(f"/admin/auth/user/{user.pk}/change/")
    assert page.status_code == 200
    assert b"upload quota" in page.content.lower()
    assert b"1 of 100 tracks" in page.content
    form = page.context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None}
    data.update(
        {
            "username": user.username,
            "date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
            "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
            "is_active": "on",
            "upload_quota-TOTAL_FORMS": "1",
            "upload_quota-INITIAL_FORMS": "1",
            "upload_quota-MIN_NUM_FORMS": "0",
            "upload_quota-MAX_NUM_FORMS": "1",
            "upload_quota-0-user": str(user.pk),
            "upload_quota-0-storage_bytes_limit": "",
            "upload_quota-0-daily_bytes_limit": "",
            "upload_quota-0-daily_tracks_limit": "1",
        }
    )
    data.pop("password", None)
    data.pop("groups", None)
    data.pop("user_permissions", None)
    data.pop("last_login", None)
    data.pop("date_joined", None)
    saved = staff_client.post(f"/admin/auth/user/{user.pk}/change/", data)
    assert saved.status_code == 302, saved.content.decode()[:3000]
    quota = UploadQuota.objects.get(user=user)
    assert quota.daily_tracks_limit == 1
    # Staff's save changed the limit, not the usage.
    assert quota.stored_bytes == size
    assert quota.day_tracks == 1
    assert auth_client.get(QUOTA_URL).json()["daily_tracks_limit"] == 1
    assert_error(upload(auth_client, wav_file.read_bytes()), 429, "daily_track_limit")
    # The list of quotas, biggest first.
    listing = staff_client.get("/admin/tracks/uploadquota/")
    assert listing.status_code == 200
    assert user.username.encode() in listing.content


def test_a_limit_of_zero_is_no_limit(auth_client, user, wav_file, settings):
    settings.TRACK_DAILY_UPLOAD_TRACKS = 1
    UploadQuota.objects.create(user=user, daily_tracks_limit=0)
    create_track(auth_client, wav_file.read_bytes())
    create_track(auth_client, wav_file.read_bytes())
    assert auth_client.get(QUOTA_URL).json()["daily_tracks_limit"] is None


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="concurrent uploads need PostgreSQL (SQLite runs one writer at a time)",
)
def test_two_uploads_at_once_cannot_both_slip_under_the_quota(
    live_server, user, wav_file, settings
):
    size = wav_file.stat().st_size
    settings.TRACK_QUOTA_BYTES = size + size // 2
    token = Token.objects.create(user=user)
    content = wav_file.read_bytes()
    statuses: list[int] = []
    start = threading.Barrier(4)

    def send() -> None:
        start.wait()
        response = requests.post(
            f"{live_server.url}{LIST_URL}",
            headers={"Authorization": f"Token {token.key}"},
            files={"file": ("tone.wav", content, "audio/wav")},
            timeout=60,
        )
        statuses.append(response.status_code)

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [201, 413, 413, 413]
    assert Track.objects.filter(owner=user).count() == 1
    assert UploadQuota.objects.get(user=user).stored_bytes == size


def test_resumable_uploads_under_way_hold_their_bytes(auth_client, wav_file, settings):
    """A tus session counts from its creation: a one-request upload that would
    fit only without it is refused, and the quota shows what it holds."""
    size = wav_file.stat().st_size
    settings.TRACK_QUOTA_BYTES = 2 * size - 1000
    opened = auth_client.post(
        "/api/v1/uploads/tus/", HTTP_TUS_RESUMABLE="1.0.0", HTTP_UPLOAD_LENGTH=str(size)
    )
    assert opened.status_code == 201
    quota = auth_client.get(QUOTA_URL).json()
    assert (quota["open_uploads"], quota["open_upload_bytes"]) == (1, size)
    refused = upload(auth_client, wav_file.read_bytes())
    assert_error(refused, 413, "storage_quota_exceeded")
    assert refused.json()["error"]["details"]["open_upload_bytes"] == size
    # Ended, it holds nothing.
    assert (
        auth_client.delete(opened["Location"], HTTP_TUS_RESUMABLE="1.0.0").status_code
        == 204
    )
    create_track(auth_client, wav_file.read_bytes())


def test_the_user_page_of_someone_who_never_uploaded(staff_client, other_user):
    page = staff_client.get(f"/admin/auth/user/{other_user.pk}/change/")
    assert page.status_code == 200
    assert b"0\xc2\xa0bytes of 10.0\xc2\xa0GB" in page.content
