"""The Django admin pages for tracks."""

from __future__ import annotations

from pathlib import Path

import pytest

from mediastore.tally import tally_recount
from tests.tracks.helpers import create_track
from tracks.models import StorageMigrationRun, Track

pytestmark = pytest.mark.django_db


@pytest.fixture
def tracks(auth_client, wav_file):
    content = wav_file.read_bytes()
    local = create_track(auth_client, content, title="On disk")
    moved = create_track(auth_client, content, title="In the bucket")
    # A row as the storage migration leaves it, changed outside the app:
    # the storage tallies are counted again, as an operator would.
    Track.objects.filter(pk=moved["id"]).update(storage_backend="s3")
    tally_recount()
    return local, moved


def test_changelist_filters_by_backend_and_searches(staff_client, tracks):
    page = staff_client.get("/admin/tracks/track/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "On disk" in text
    assert "In the bucket" in text
    assert "Storage migration" in text
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


def test_storage_page_shows_backends_runs_and_failures(staff_client, tracks, wav_file):
    page = staff_client.get("/admin/tracks/track/storage/")
    assert page.status_code == 200
    assert "Storage migration" in page.content.decode()
    status = staff_client.get("/admin/tracks/track/storage/status.json").json()
    size = wav_file.stat().st_size
    backends = status["overview"]["backends"]
    assert {b["backend"]: (b["count"], b["bytes"]) for b in backends} == {
        "local": (1, size),
        "s3": (1, size),
    }
    assert status["overview"]["s3_share_bytes"] == pytest.approx(0.5)
    assert status["running"] == []
    assert status["failed_rows"] == []
    # The page embeds the same data for its first render.
    assert 'id="storage-status"' in page.content.decode()


def test_admin_pages_need_staff(auth_client, client, user):
    client.force_login(user)
    assert client.get("/admin/tracks/track/storage/").status_code == 302
    assert client.get("/admin/tracks/track/storage/status.json").status_code == 302


def test_staff_queue_a_move_from_the_track_list(staff_client, s3_local, user, settings):
    from tests.tracks.migration_helpers import make_local_tracks

    tracks = make_local_tracks(user, Path(settings.MEDIA_ROOT), 3, size=2048)
    response = staff_client.post(
        "/admin/tracks/track/",
        {
            "action": "move_to_s3",
            "_selected_action": [str(tracks[0].pk), str(tracks[1].pk)],
        },
        follow=True,
    )
    assert response.status_code == 200
    assert "Queued a move of 2 track(s) to s3" in response.content.decode()
    # The immediate backend ran the task inline.
    backends = dict(Track.objects.values_list("pk", "storage_backend"))
    assert backends == {tracks[0].pk: "s3", tracks[1].pk: "s3", tracks[2].pk: "local"}
    run = StorageMigrationRun.objects.get()
    assert (run.moved, run.started_by) == (2, "admin:staff")


@pytest.mark.django_db(transaction=True)
def test_queued_moves_run_on_the_database_task_worker(s3_local, settings, staff_user):
    from django.core.management import call_command

    from tests.tracks.migration_helpers import make_local_tracks
    from tracks.tasks import tracks_move

    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    tracks = make_local_tracks(staff_user, Path(settings.MEDIA_ROOT), 2, size=1024)
    result = tracks_move.enqueue(track_ids=[str(t.pk) for t in tracks], target="s3")
    assert Track.objects.filter(storage_backend="s3").count() == 0
    call_command("db_worker", "--batch", "--no-startup-delay", "--no-reload")
    result.refresh()
    assert result.status == "SUCCESSFUL"
    assert result.return_value is not None
    assert result.return_value["moved"] == 2
    assert Track.objects.filter(storage_backend="s3").count() == 2


def test_a_move_to_s3_is_refused_up_front_while_s3_is_not_configured(
    staff_client, user, settings
):
    from tests.tracks.migration_helpers import make_local_tracks

    settings.AWS_S3_ENABLED = False
    tracks = make_local_tracks(user, Path(settings.MEDIA_ROOT), 2, size=1024)
    response = staff_client.post(
        "/admin/tracks/track/",
        {"action": "move_to_s3", "_selected_action": [str(t.pk) for t in tracks]},
        follow=True,
    )
    text = response.content.decode()
    assert "Nothing queued. S3 is not configured: set AWS_S3_ENABLED" in text
    assert "Queued a move" not in text
    assert not StorageMigrationRun.objects.exists()
    assert set(Track.objects.values_list("storage_backend", flat=True)) == {"local"}


@pytest.mark.django_db(transaction=True)
def test_a_queued_move_that_leaves_rows_behind_is_a_failed_task(
    s3_local, settings, staff_user
):
    from django.core.management import call_command

    from tests.tracks.migration_helpers import make_local_tracks
    from tracks.tasks import tracks_move

    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    tracks = make_local_tracks(staff_user, Path(settings.MEDIA_ROOT), 2, size=1024)
    (Path(settings.MEDIA_ROOT) / tracks[0].storage_key).unlink()
    result = tracks_move.enqueue(track_ids=[str(t.pk) for t in tracks], target="s3")
    call_command("db_worker", "--batch", "--no-startup-delay", "--no-reload")
    result.refresh()
    assert result.status == "FAILED"
    assert "did not move" in result.errors[0].traceback
    assert "MigrationFailed" in result.errors[0].exception_class_path
    run = StorageMigrationRun.objects.get()
    assert (run.status, run.moved, run.failed) == ("failed", 1, 1)


def test_the_admin_index_links_the_storage_migration_page(staff_client):
    text = staff_client.get("/admin/").content.decode()
    assert '<a href="/admin/tracks/track/storage/">Storage migration</a>' in text
    # The models are still listed below it.
    assert 'href="/admin/tracks/track/"' in text
