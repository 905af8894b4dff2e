"""migrate_storage at catalogue scale: index-only work, leases, races, audits."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from mediastore import transfer
from tests.audio import make_audio
from tests.s3proxy import Faults, S3Proxy
from tests.streaming.conftest import package_track
from tests.tracks.helpers import assert_no_table_scan, plans_of
from tests.tracks.migration_helpers import make_local_tracks
from tracks import purge
from tracks.migration.claims import Claimer
from tracks.migration.copying import track_copy
from tracks.migration.settling import tracks_flip
from tracks.models import Track

pytestmark = pytest.mark.django_db


@pytest.fixture
def proxy(s3_server, settings):
    running = S3Proxy(upstream=s3_server.endpoint)
    endpoint = running.start()
    yield running, endpoint
    running.stop()


@pytest.fixture
def packaged_local(
    s3_local, auth_client, audio_dir, django_capture_on_commit_callbacks
):
    """A track on local disk with its ready HLS package, S3 configured."""
    song = make_audio(audio_dir / "scale.flac", fmt="flac", seconds=4)
    with django_capture_on_commit_callbacks(execute=True):
        track, package = package_track(auth_client, song)
    package.refresh_from_db()
    assert package.status == "ready", package.error
    return track, package


def migrate(*args: str) -> dict:
    out = io.StringIO()
    call_command("migrate_storage", *args, "--json", stdout=out)
    return json.loads(out.getvalue())


def test_a_claim_walks_only_the_rows_left_on_the_source(s3_local, user, settings):
    tracks = make_local_tracks(user, Path(settings.MEDIA_ROOT), 30, size=100)
    # Most rows already moved, as late in a big migration.
    Track.objects.filter(pk__in=[t.pk for t in tracks[:27]]).update(
        storage_backend="s3"
    )
    claimer = Claimer(runner="me:1:a", target="s3", lease_seconds=30)
    with CaptureQueriesContext(connection) as captured:
        claimed = claimer.claim(2)
    assert [t.pk for t in claimed] == sorted(t.pk for t in tracks[27:])[:2]
    [(_, plan)] = plans_of(captured.captured_queries)[:1]
    assert "track_local_by_id" in plan, plan
    # The walk goes on from where it got to, then starts over once.
    assert len(claimer.claim(5)) == 1
    assert claimer.claim(5) == []


def test_no_op_dry_run_and_status_read_no_table(
    s3_local, user, settings, staff_user, client
):
    make_local_tracks(user, Path(settings.MEDIA_ROOT), 12, size=100)
    migrate("--to", "s3")
    client.force_login(staff_user)
    counts = []
    for extra in (0, 25):
        if extra:
            make_local_tracks(user, Path(settings.MEDIA_ROOT), extra, size=100, seed=3)
            migrate("--to", "s3")
        with CaptureQueriesContext(connection) as captured:
            assert migrate("--to", "s3")["selected"] == 0
            assert migrate("--to", "s3", "--dry-run")["rows"] == 0
            assert migrate("--to", "local", "--dry-run")["rows"] == 12 + extra
            status = client.get("/admin/tracks/track/storage/status.json").json()
            client.get("/admin/tracks/track/storage/")
        assert status["overview"]["backends"][1]["count"] == 12 + extra
        assert_no_table_scan(captured.captured_queries)
        counts.append(len(captured.captured_queries))
    # The same queries whatever the number of rows.
    assert counts[0] == counts[1]


def test_the_heartbeat_keeps_rows_whose_copy_outlasts_the_lease(
    s3_local, user, settings, proxy
):
    running, endpoint = proxy
    settings.AWS_S3_ENDPOINT_URL = endpoint
    make_local_tracks(user, Path(settings.MEDIA_ROOT), 4, size=1000)
    # Every request takes longer than a lease.
    running.faults = Faults(rate=1.0, kinds=("slow",), slow_seconds=1.5)
    summary = migrate("--to", "s3", "--workers", "4", "--lease-seconds", "1")
    assert (summary["moved"], summary["skipped"], summary["failures"]) == (4, 0, {})


def test_a_runner_whose_lease_ran_out_cannot_flip(s3_local, user, settings):
    tracks = make_local_tracks(user, Path(settings.MEDIA_ROOT), 2, size=100)
    claimed = Claimer(runner="slow:1:a", target="s3", lease_seconds=1).claim(2)
    outcomes = [track_copy(track=t, target="s3") for t in claimed]
    time.sleep(1.1)
    assert (
        tracks_flip(
            runner="slow:1:a",
            target="s3",
            verified=list(zip(claimed, outcomes, strict=True)),
        )
        == set()
    )
    # Anyone may take the rows now, and finish them.
    summary = migrate("--to", "s3")
    assert (summary["moved"], summary["already_there"]) == (0, 2)
    assert {t.storage_backend for t in Track.objects.all()} == {"s3"}
    assert len(tracks) == 2


def test_rows_of_a_runner_that_died_on_this_host_are_taken_over_at_once(
    s3_local, user, settings
):
    tracks = make_local_tracks(user, Path(settings.MEDIA_ROOT), 3, size=100)
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead = f"{socket.gethostname()}:{int(gone.stdout)}:killed"
    Claimer(runner=dead, target="s3", lease_seconds=3600).claim(2)
    # Elsewhere, alive or not, a runner keeps its rows until its lease ends.
    Claimer(runner="other-host:1:x", target="s3", lease_seconds=3600).claim(1)
    summary = migrate("--to", "s3", "--limit", "2")
    assert (summary["moved"], summary["skipped"]) == (2, 0)
    held = Track.objects.get(migration_runner="other-host:1:x")
    assert held.storage_backend == "local"
    assert {t.pk for t in tracks} == set(Track.objects.values_list("pk", flat=True))


@pytest.mark.django_db(transaction=True)
def test_a_track_deleted_while_it_is_copied_leaves_no_copies(
    s3_local, auth_client, settings, monkeypatch, packaged_local
):
    """The deletion commits while the original is on its way to the bucket;
    the copy of its HLS package follows. Nothing of it may stay anywhere."""
    from tracks.services import track_delete

    track, package = packaged_local
    assert len(package.files) >= 8
    real_put = transfer.S3Transfer.put
    deleted: list[str] = []

    def put_during_a_deletion(self, key, *args, **kwargs):
        if key == track.storage_key and not deleted:
            track_delete(track=Track.objects.get(pk=track.pk))
            deleted.append(key)
        return real_put(self, key, *args, **kwargs)

    monkeypatch.setattr(transfer.S3Transfer, "put", put_during_a_deletion)
    summary = migrate("--to", "s3")
    assert deleted
    assert summary["deleted"] == 1
    assert (summary["failed"], summary["skipped"]) == (0, 0)
    assert "Contents" not in s3_local.list_objects_v2(Bucket=s3_local.bucket)
    media = Path(settings.MEDIA_ROOT)
    assert not [p for p in media.rglob("*") if p.is_file()]


def test_purge_keeps_a_corrupt_object_that_carries_the_right_metadata(
    s3_local, user, settings
):
    [track] = make_local_tracks(user, Path(settings.MEDIA_ROOT), 1, size=4000)
    migrate("--to", "s3")
    # Same size, same x-amz-meta-sha256, other bytes.
    s3_local.put_object(
        Bucket=s3_local.bucket,
        Key=track.storage_key,
        Body=b"\x00" * 4000,
        Metadata={"sha256": track.sha256},
    )
    assert migrate("--purge-local", "--older-than", "0") == {
        "purged": 0,
        "bytes": 0,
        "kept": 1,
    }
    assert (Path(settings.MEDIA_ROOT) / track.storage_key).exists()
    # Reading the object back shows it differs: --deep keeps it too.
    assert migrate("--purge-local", "--older-than", "0", "--deep")["purged"] == 0


def test_purge_rechecks_each_row_under_a_lock_before_deleting(
    s3_local, user, settings, monkeypatch
):
    tracks = make_local_tracks(user, Path(settings.MEDIA_ROOT), 4, size=1000)
    migrate("--to", "s3")
    moved_back, claimed = tracks[0], tracks[1]
    real = purge._verified_groups

    def meanwhile(*args, **kwargs):
        # Between the checks and the deletion: one row moves back to local
        # disk, another is claimed by a runner moving it back.
        Track.objects.filter(pk=moved_back.pk).update(storage_backend="local")
        Claimer(runner="back:1:a", target="local", lease_seconds=60).claim(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(purge, "_verified_groups", meanwhile)
    result = migrate("--purge-local", "--older-than", "0")
    assert result["purged"] == 2
    media = Path(settings.MEDIA_ROOT)
    kept = {t.pk for t in tracks if (media / t.storage_key).exists()}
    held = Track.objects.get(migration_runner="back:1:a").pk
    assert kept == {moved_back.pk, held}
    assert claimed.pk in {t.pk for t in tracks}


def test_purge_refuses_a_negative_age(s3_local):
    with pytest.raises(CommandError, match="must not be negative"):
        call_command(
            "migrate_storage",
            "--purge-local",
            "--older-than",
            "-1",
            stdout=io.StringIO(),
        )


def test_deep_purge_trusts_bytes_read_back_when_the_etag_was_not_recorded(
    s3_local, user, settings
):
    tracks = make_local_tracks(user, Path(settings.MEDIA_ROOT), 2, size=1000)
    migrate("--to", "s3")
    Track.objects.update(storage_etag="f" * 32)  # no longer what the bucket says
    assert migrate("--purge-local", "--older-than", "0")["kept"] == 2
    assert migrate("--purge-local", "--older-than", "0", "--deep")["purged"] == 2
    assert not any((Path(settings.MEDIA_ROOT) / t.storage_key).exists() for t in tracks)


def test_verify_only_reads_listings_not_objects(s3_local, user, settings, proxy):
    running, endpoint = proxy
    tracks = make_local_tracks(user, Path(settings.MEDIA_ROOT), 20, size=500)
    migrate("--to", "s3")
    settings.AWS_S3_ENDPOINT_URL = endpoint
    report = migrate("--verify-only")
    assert report["clean"] is True, report
    assert (report["checked"], report["listed"], report["unrecorded_etags"]) == (
        20,
        40,
        0,
    )
    methods = {method for method, _ in running.requests}
    assert methods == {"GET"}
    # Listing pages only: a GET of the bucket, never of an object.
    assert {path for _, path in running.requests} == {f"/{s3_local.bucket}"}
    running.requests.clear()
    deep = migrate("--verify-only", "--deep", "--to", "s3")
    assert deep["clean"] is True
    objects = {path for _, path in running.requests if path != f"/{s3_local.bucket}"}
    assert len(objects) == len(tracks)


def test_verify_only_finds_a_changed_object_by_its_etag(
    s3_local, s3_server, user, settings
):
    [track, _] = make_local_tracks(user, Path(settings.MEDIA_ROOT), 2, size=800)
    migrate("--to", "s3")
    (s3_server.root / s3_local.bucket / track.storage_key).write_bytes(b"q" * 800)
    out = io.StringIO()
    with pytest.raises(CommandError, match="does not match"):
        call_command("migrate_storage", "--verify-only", "--json", stdout=out)
    [mismatch] = json.loads(out.getvalue())["mismatched"]
    assert (mismatch["track"], mismatch["backend"]) == (str(track.pk), "s3")
    assert mismatch["expected_etag"] != mismatch["etag"]
    # Rows moved before ETags were recorded are checked by size, and --deep
    # hashes them.
    Track.objects.update(storage_etag="")
    report = migrate("--verify-only", "--to", "s3")
    assert (report["clean"], report["unrecorded_etags"]) == (True, 2)
    with pytest.raises(CommandError):
        call_command("migrate_storage", "--verify-only", "--deep", stdout=io.StringIO())
