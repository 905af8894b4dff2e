"""`manage.py migrate_storage`: moves, audits and purges on a real S3 server."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from pathlib import Path

import obstore
import pytest
import requests
from django.core.files.storage import storages
from django.core.management import CommandError, call_command
from django.utils import timezone

from mediastore.backends import s3_storage, storage_reset
from tests.tracks.helpers import create_track
from tests.tracks.migration_helpers import make_local_tracks
from tracks.migration.claims import Claimer
from tracks.migration.copying import Outcome, track_copy
from tracks.migration.settling import tracks_flip
from tracks.models import MigrationRunStatus, StorageMigrationRun, Track

pytestmark = pytest.mark.django_db


def migrate(*args: str) -> dict:
    out = io.StringIO()
    call_command("migrate_storage", *args, "--json", stdout=out)
    return json.loads(out.getvalue())


def object_sha(s3, key: str) -> str | None:
    head = s3.head_object(Bucket=s3.bucket, Key=key)
    return {k.lower(): v for k, v in head["Metadata"].items()}.get("sha256")


def test_dry_run_counts_and_changes_nothing(s3_local, user, settings):
    make_local_tracks(user, Path(settings.MEDIA_ROOT), 5, size=1000)
    summary = migrate("--to", "s3", "--dry-run")
    assert summary == {"dry_run": True, "target": "s3", "rows": 5, "bytes": 5000}
    assert set(Track.objects.values_list("storage_backend", flat=True)) == {"local"}
    assert StorageMigrationRun.objects.count() == 0
    assert "Contents" not in s3_local.list_objects_v2(Bucket=s3_local.bucket)


def test_moves_every_row_to_s3_verified_and_playable(
    s3_local, user, auth_client, settings, wav_file
):
    tracks = make_local_tracks(user, Path(settings.MEDIA_ROOT), 12, size=20_000)
    uploaded = create_track(auth_client, wav_file.read_bytes())
    summary = migrate("--to", "s3", "--workers", "3", "--batch-size", "4")
    assert summary["status"] == "succeeded"
    assert (summary["selected"], summary["moved"], summary["failed"]) == (13, 13, 0)
    assert summary["bytes"] == 12 * 20_000 + wav_file.stat().st_size
    for track in Track.objects.all():
        assert track.storage_backend == "s3"
        assert track.migration_state == "flipped"
        assert track.storage_verified_at is not None
        assert object_sha(s3_local, track.storage_key) == track.sha256
    body = auth_client.get(f"/api/v1/tracks/{uploaded['id']}/stream").json()
    assert body["source"] == "s3"
    assert requests.get(body["url"], timeout=10).content == wav_file.read_bytes()
    run = StorageMigrationRun.objects.get()
    assert (run.status, run.moved, run.target) == (
        MigrationRunStatus.SUCCEEDED,
        13,
        "s3",
    )
    # Local originals stay until --purge-local.
    assert all((Path(settings.MEDIA_ROOT) / t.storage_key).exists() for t in tracks)


def test_playback_follows_the_flip_at_once(s3_local, auth_client, wav_file):
    track = create_track(auth_client, wav_file.read_bytes())
    url = f"/api/v1/tracks/{track['id']}/stream"
    assert auth_client.get(url).json()["source"] == "origin"
    migrate("--to", "s3")
    body = auth_client.get(url).json()
    assert body["source"] == "s3"
    assert requests.get(body["url"], timeout=10).content == wav_file.read_bytes()


def test_a_second_run_is_a_no_op(
    s3_local, user, settings, django_assert_max_num_queries
):
    make_local_tracks(user, Path(settings.MEDIA_ROOT), 4, size=1000)
    assert migrate("--to", "s3")["on_target"] == 0
    storage_reset()
    # A few set-based queries, none per row, and no S3 client at all.
    with django_assert_max_num_queries(8):
        summary = migrate("--to", "s3")
    assert (summary["selected"], summary["moved"], summary["status"]) == (
        0,
        0,
        "succeeded",
    )
    assert summary["on_target"] == 4
    assert "media_s3" not in storages._storages  # type: ignore[attr-defined]


def test_an_upload_that_does_not_verify_is_deleted_and_the_row_stays(
    s3_local, user, settings, monkeypatch
):
    track = make_local_tracks(user, Path(settings.MEDIA_ROOT), 1, size=3000)[0]
    real_put = obstore.put

    def stored_something_else(*args, **kwargs):
        # The server answers with the digest of other bytes than ours.
        result = real_put(*args, **kwargs)
        return {**result, "e_tag": '"' + "0" * 32 + '"'}

    monkeypatch.setattr(obstore, "put", stored_something_else)
    outcome = track_copy(track=track, target="s3")
    assert (outcome.kind, outcome.reason) == ("failed", "storage_error")
    assert "Contents" not in s3_local.list_objects_v2(Bucket=s3_local.bucket)
    assert Track.objects.get().storage_backend == "local"


def test_limit_and_track_select_rows(s3_local, user, settings):
    make_local_tracks(user, Path(settings.MEDIA_ROOT), 6, size=1000)
    assert migrate("--to", "s3", "--limit", "2")["moved"] == 2
    still_local = Track.objects.filter(storage_backend="local").first()
    assert migrate("--to", "s3", "--track", str(still_local.pk))["moved"] == 1
    assert Track.objects.get(pk=still_local.pk).storage_backend == "s3"
    assert Track.objects.filter(storage_backend="s3").count() == 3


def test_an_object_already_uploaded_is_flipped_without_uploading(
    s3_local, user, settings
):
    """What a re-run finds after a crash between upload and flip."""
    track = make_local_tracks(user, Path(settings.MEDIA_ROOT), 1, size=5000)[0]
    assert track_copy(track=track, target="s3").kind == "moved"
    # The dead runner's claim: copying, with a lease that has run out.
    Track.objects.filter(pk=track.pk).update(
        migration_state="copying",
        migration_runner="dead:1:x",
        migration_lease_until=timezone.now() - timedelta(seconds=1),
    )
    summary = migrate("--to", "s3")
    assert (summary["moved"], summary["already_there"]) == (0, 1)
    assert Track.objects.get().storage_backend == "s3"


def test_missing_and_corrupt_files_fail_with_reasons_and_never_flip(
    s3_local, user, settings
):
    tracks = make_local_tracks(user, Path(settings.MEDIA_ROOT), 4, size=1000)
    media = Path(settings.MEDIA_ROOT)
    (media / tracks[0].storage_key).unlink()
    (media / tracks[1].storage_key).write_bytes(b"x" * 1000)
    with pytest.raises(CommandError, match="2 track\\(s\\) did not move"):
        call_command("migrate_storage", "--to", "s3", stdout=io.StringIO())
    rows = {t.pk: t for t in Track.objects.all()}
    assert rows[tracks[0].pk].storage_backend == "local"
    assert rows[tracks[0].pk].migration_state == "failed"
    assert rows[tracks[0].pk].migration_error.startswith("missing_source")
    assert rows[tracks[1].pk].migration_error.startswith("corrupt_source")
    assert rows[tracks[2].pk].storage_backend == "s3"
    run = StorageMigrationRun.objects.get()
    assert run.failures == {"missing_source": 1, "corrupt_source": 1}
    assert run.status == MigrationRunStatus.FAILED


def test_allow_missing_exits_zero_for_missing_files_only(s3_local, user, settings):
    tracks = make_local_tracks(user, Path(settings.MEDIA_ROOT), 2, size=1000)
    (Path(settings.MEDIA_ROOT) / tracks[0].storage_key).unlink()
    summary = migrate("--to", "s3", "--allow-missing")
    assert summary["failures"] == {"missing_source": 1}
    assert summary["failed_tracks"][0]["track"] == str(tracks[0].pk)


def test_round_trip_to_s3_and_back_keeps_the_bytes(s3_local, user, settings):
    tracks = make_local_tracks(user, Path(settings.MEDIA_ROOT), 5, size=30_000)
    media = Path(settings.MEDIA_ROOT)
    originals = {t.pk: (media / t.storage_key).read_bytes() for t in tracks}
    migrate("--to", "s3")
    purged = migrate("--purge-local", "--older-than", "0")
    assert purged == {"purged": 5, "bytes": 150_000, "kept": 0}
    assert not any((media / t.storage_key).exists() for t in tracks)
    summary = migrate("--to", "local", "--workers", "2")
    assert summary["moved"] == 5
    for track in Track.objects.all():
        assert track.storage_backend == "local"
        assert (media / track.storage_key).read_bytes() == originals[track.pk]


def test_purge_keeps_recent_rows_and_unverified_objects(s3_local, user, settings):
    tracks = make_local_tracks(user, Path(settings.MEDIA_ROOT), 2, size=1000)
    migrate("--to", "s3")
    assert migrate("--purge-local", "--older-than", "1")["purged"] == 0
    s3_local.delete_object(Bucket=s3_local.bucket, Key=tracks[0].storage_key)
    assert migrate("--purge-local", "--older-than", "0") == {
        "purged": 1,
        "bytes": 1000,
        "kept": 1,
    }
    assert (Path(settings.MEDIA_ROOT) / tracks[0].storage_key).exists()


def test_verify_only_finds_corrupt_missing_and_orphaned_bytes(
    s3_local, s3_server, user, settings
):
    tracks = make_local_tracks(user, Path(settings.MEDIA_ROOT), 4, size=2000)
    migrate("--to", "s3", "--track", str(tracks[0].pk), "--track", str(tracks[1].pk))
    assert migrate("--verify-only")["clean"] is True
    # Bytes changed behind the server's back, keeping size and metadata.
    (s3_server.root / s3_local.bucket / tracks[0].storage_key).write_bytes(b"y" * 2000)
    (Path(settings.MEDIA_ROOT) / tracks[2].storage_key).unlink()
    s3_local.put_object(Bucket=s3_local.bucket, Key="tracks/orphan/x.wav", Body=b"zz")
    out = io.StringIO()
    with pytest.raises(CommandError, match="does not match"):
        call_command("migrate_storage", "--verify-only", "--json", stdout=out)
    report = json.loads(out.getvalue())
    assert [m["track"] for m in report["mismatched"]] == [str(tracks[0].pk)]
    assert [m["track"] for m in report["missing"]] == [str(tracks[2].pk)]
    assert report["orphans"] == [
        {"backend": "s3", "key": "tracks/orphan/x.wav", "size": 2}
    ]
    # Nothing changed by the audit.
    assert (
        s3_local.get_object(Bucket=s3_local.bucket, Key="tracks/orphan/x.wav")[
            "Body"
        ].read()
        == b"zz"
    )


def test_delete_orphans_needs_confirmation(s3_local, user, settings, monkeypatch):
    make_local_tracks(user, Path(settings.MEDIA_ROOT), 1, size=100)
    s3_local.put_object(Bucket=s3_local.bucket, Key="tracks/orphan/x.wav", Body=b"zz")
    monkeypatch.setattr("builtins.input", lambda prompt: "no")
    with pytest.raises(CommandError, match="nothing deleted"):
        call_command(
            "migrate_storage", "--verify-only", "--delete-orphans", stdout=io.StringIO()
        )
    report = migrate("--verify-only", "--delete-orphans", "--yes")
    assert report["deleted_orphans"] == 1
    assert "Contents" not in s3_local.list_objects_v2(
        Bucket=s3_local.bucket, Prefix="tracks/orphan/"
    )


def test_bad_arguments_are_refused(s3_local):
    with pytest.raises(CommandError, match="--to s3 or --to local"):
        call_command("migrate_storage")
    with pytest.raises(CommandError, match="--older-than"):
        call_command("migrate_storage", "--purge-local")
    with pytest.raises(CommandError, match="at least 1"):
        call_command("migrate_storage", "--to", "s3", "--workers", "0")
    with pytest.raises(CommandError, match="AWS_S3_MAX_POOL_CONNECTIONS"):
        call_command("migrate_storage", "--to", "s3", "--workers", "1000")


def test_human_summary_and_progress_lines(s3_local, user, settings, capsys):
    make_local_tracks(user, Path(settings.MEDIA_ROOT), 3, size=1000)
    out = io.StringIO()
    call_command("migrate_storage", "--to", "s3", stdout=out)
    text = out.getvalue()
    assert "to s3: succeeded" in text
    assert "moved 3, already there 0, skipped 0, failed 0" in text
    assert "files/s" in text


def test_runs_and_storage_totals_are_exported_as_metrics(
    s3_local, user, settings, client
):
    make_local_tracks(user, Path(settings.MEDIA_ROOT), 3, size=1000)
    migrate("--to", "s3", "--limit", "2")
    text = client.get("/metrics").content.decode()
    assert 'veza_tracks_stored{backend="s3"} 2.0' in text
    assert 'veza_tracks_stored{backend="local"} 1.0' in text
    assert 'veza_tracks_stored_bytes{backend="s3"} 2000.0' in text
    assert "veza_storage_migration_runs_active 0.0" in text
    assert 'veza_storage_migration_rows_total{outcome="moved",target="s3"}' in text


def test_a_flip_skips_rows_another_runner_took_over(s3_local, user, settings):
    tracks = make_local_tracks(user, Path(settings.MEDIA_ROOT), 3, size=100)
    claimed = Claimer(runner="me:1:a", target="s3", lease_seconds=60).claim(3)
    assert {t.migration_state for t in Track.objects.all()} == {"copying"}
    Track.objects.filter(pk=tracks[0].pk).update(migration_runner="other:2:b")
    flipped = tracks_flip(
        runner="me:1:a",
        target="s3",
        verified=[(t, Outcome(t.pk, "moved", size=100)) for t in claimed],
    )
    assert flipped == {tracks[1].pk, tracks[2].pk}
    rows = {t.pk: t for t in Track.objects.all()}
    assert rows[tracks[0].pk].storage_backend == "local"
    assert rows[tracks[0].pk].migration_state == "copying"
    assert {rows[t.pk].migration_state for t in tracks[1:]} == {"flipped"}


def test_copying_a_claimed_row_makes_no_query(
    s3_local, user, settings, django_assert_num_queries
):
    """Copies run in worker threads: everything they read comes with the claim."""
    make_local_tracks(user, Path(settings.MEDIA_ROOT), 2, size=100)
    claimed = Claimer(runner="me:1:a", target="s3", lease_seconds=60).claim(2)
    s3_storage()  # built beforehand, as the run does
    with django_assert_num_queries(0):
        outcomes = [track_copy(track=t, target="s3") for t in claimed]
    assert {o.kind for o in outcomes} == {"moved"}


@pytest.mark.parametrize(
    "args",
    [
        ["--to", "s3", "--dry-run"],
        ["--to", "s3"],
        ["--to", "s3", "--enqueue", "2"],
        ["--to", "local"],
        ["--verify-only", "--to", "s3"],
        ["--purge-local", "--older-than", "0", "--dry-run"],
    ],
    ids=["dry-run", "run", "enqueue", "to-local", "verify", "purge"],
)
def test_every_mode_that_needs_s3_names_the_missing_settings_first(
    user, settings, args
):
    settings.AWS_S3_ENABLED = False
    settings.AWS_STORAGE_BUCKET_NAME = ""
    settings.AWS_ACCESS_KEY_ID = "key"
    settings.AWS_SECRET_ACCESS_KEY = "secret"
    make_local_tracks(user, Path(settings.MEDIA_ROOT), 2, size=1024)
    with pytest.raises(CommandError) as raised:
        call_command("migrate_storage", *args, stdout=io.StringIO())
    assert str(raised.value).startswith(
        "S3 is not configured: set AWS_S3_ENABLED, AWS_STORAGE_BUCKET_NAME."
    )
    assert not StorageMigrationRun.objects.exists()
    assert set(Track.objects.values_list("storage_backend", flat=True)) == {"local"}


def test_enabled_s3_without_a_bucket_is_named_too(s3_local, user, settings):
    settings.AWS_STORAGE_BUCKET_NAME = ""
    with pytest.raises(CommandError, match=r"set AWS_STORAGE_BUCKET_NAME\."):
        call_command("migrate_storage", "--to", "s3", "--dry-run", stdout=io.StringIO())
