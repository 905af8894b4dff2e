"""migrate_storage under crashes, concurrent runners and a failing S3 server."""

from __future__ import annotations

import hashlib
import json
import random
import signal
import time
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from tests.s3proxy import Faults, S3Proxy
from tests.tracks.migration_helpers import (
    make_local_tracks,
    start_command,
    start_worker,
)
from tracks.models import StorageMigrationRun, Track

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def proxy(s3_server):
    running = S3Proxy(upstream=s3_server.endpoint)
    running.endpoint = running.start()  # type: ignore[attr-defined]
    yield running
    running.stop()


@pytest.fixture
def owner():
    return get_user_model().objects.create_user("mover")


def assert_all_on_s3_and_intact(s3, settings, tracks) -> None:
    media = Path(settings.MEDIA_ROOT)
    rows = {t.pk: t for t in Track.objects.all()}
    for track in tracks:
        row = rows[track.pk]
        assert row.storage_backend == "s3", (
            row.pk,
            row.migration_state,
            row.migration_error,
        )
        body = s3.get_object(Bucket=s3.bucket, Key=row.storage_key)["Body"].read()
        assert len(body) == row.size_bytes
        assert hashlib.sha256(body).hexdigest() == row.sha256
        # No row lost its bytes: the local original is still there too.
        assert (
            hashlib.sha256((media / row.storage_key).read_bytes()).hexdigest()
            == row.sha256
        )


def finish(settings, endpoint: str, *args: str, attempts: int = 10) -> str:
    for _ in range(attempts):
        process = start_command(settings, "--to", "s3", *args, endpoint=endpoint)
        out, err = process.communicate(timeout=300)
        if process.returncode == 0:
            return out
    raise AssertionError(f"migrate_storage did not finish: {err}")


def test_sigkill_at_any_point_is_reconciled_by_rerunning(
    s3_local, proxy, owner, settings
):
    # Enough rows that four killed runs cannot finish them: the last run
    # must reconcile what the kills left behind.
    tracks = make_local_tracks(
        owner, Path(settings.MEDIA_ROOT), 400, size=16 * 1024, seed=11
    )
    rng = random.Random(5)
    args = ("--workers", "4", "--batch-size", "8", "--lease-seconds", "2")
    kills = 0
    for _ in range(4):
        before = Track.objects.filter(storage_backend="s3").count()
        process = start_command(settings, "--to", "s3", *args, endpoint=proxy.endpoint)
        # Kill mid-run: once some rows flipped, at a random moment after.
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline:
            if Track.objects.filter(storage_backend="s3").count() >= before + 10:
                break
            time.sleep(0.02)
        time.sleep(rng.uniform(0, 0.1))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.communicate(timeout=60)
        for track in Track.objects.filter(storage_backend="s3"):
            # Every flipped row has its verified object, at every stage.
            head = s3_local.head_object(Bucket=s3_local.bucket, Key=track.storage_key)
            assert head["ContentLength"] == track.size_bytes
    assert kills >= 1, "the runs finished before they could be killed"
    moved_before = Track.objects.filter(storage_backend="s3").count()
    assert 0 < moved_before < len(tracks)
    finish(settings, proxy.endpoint, *args)
    assert_all_on_s3_and_intact(s3_local, settings, tracks)
    puts = proxy.puts()
    # A row is uploaded again only if a kill cut its upload before the flip:
    # at most the rows in flight (workers x 2) per kill.
    assert sum(puts.values()) <= len(tracks) + kills * 8
    assert max(puts.values()) <= 1 + kills
    proxy.requests.clear()
    out = finish(settings, proxy.endpoint, *args, "--json")
    assert '"selected": 0' in out
    assert proxy.puts() == {}


def test_three_runners_at_once_move_each_row_exactly_once(
    s3_local, proxy, owner, settings
):
    tracks = make_local_tracks(
        owner, Path(settings.MEDIA_ROOT), 150, size=16 * 1024, seed=12
    )
    runners = [
        start_command(
            settings,
            "--to",
            "s3",
            "--workers",
            "3",
            "--batch-size",
            "5",
            "--json",
            endpoint=proxy.endpoint,
        )
        for _ in range(3)
    ]
    outputs = [r.communicate(timeout=300) for r in runners]
    assert [r.returncode for r in runners] == [0, 0, 0], [o[1][-2000:] for o in outputs]
    assert_all_on_s3_and_intact(s3_local, settings, tracks)
    puts = proxy.puts()
    assert len(puts) == len(tracks)
    assert set(puts.values()) == {1}


def test_transient_faults_are_retried_until_done(s3_local, proxy, owner, settings):
    tracks = make_local_tracks(
        owner, Path(settings.MEDIA_ROOT), 60, size=16 * 1024, seed=13
    )
    proxy.faults = Faults(rate=0.1, seed=3)
    process = start_command(
        settings, "--to", "s3", "--workers", "4", endpoint=proxy.endpoint
    )
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-3000:]
    assert sum(proxy.injected.values()) > 0
    assert set(proxy.injected) >= {"500", "503", "reset"}
    assert_all_on_s3_and_intact(s3_local, settings, tracks)


def test_with_the_server_down_the_run_fails_cleanly_and_recovers(
    s3_local, proxy, owner, settings
):
    tracks = make_local_tracks(owner, Path(settings.MEDIA_ROOT), 10, size=4096, seed=14)
    proxy.faults = Faults(down=True)
    process = start_command(
        settings, "--to", "s3", "--workers", "2", endpoint=proxy.endpoint
    )
    _, err = process.communicate(timeout=300)
    assert process.returncode != 0
    assert "did not move" in err
    assert "storage_error" in err
    rows = list(Track.objects.all())
    assert {r.storage_backend for r in rows} == {"local"}
    assert {r.migration_state for r in rows} == {"failed"}
    proxy.faults = Faults()
    finish(settings, proxy.endpoint, "--workers", "2")
    assert_all_on_s3_and_intact(s3_local, settings, tracks)


@pytest.mark.parametrize("multipart", [False, True])
def test_a_body_changed_in_transit_is_refused_and_never_flipped(
    s3_local, proxy, owner, settings, multipart
):
    # Payloads are not signed (AWS_S3_SIGN_PAYLOAD): the Content-MD5 of each
    # PUT, or of each part, is what lets the server catch a changed body.
    if multipart:
        settings.AWS_S3_MULTIPART_THRESHOLD = 4096
    tracks = make_local_tracks(owner, Path(settings.MEDIA_ROOT), 6, size=8192, seed=16)
    proxy.faults = Faults(rate=1.0, kinds=("corrupt",))
    process = start_command(
        settings, "--to", "s3", "--workers", "2", endpoint=proxy.endpoint
    )
    _, err = process.communicate(timeout=300)
    assert process.returncode != 0
    assert "storage_error" in err
    assert proxy.injected["corrupt"] >= 6
    rows = list(Track.objects.all())
    assert {r.storage_backend for r in rows} == {"local"}
    assert {r.migration_state for r in rows} == {"failed"}
    assert not s3_local.list_objects_v2(Bucket=s3_local.bucket).get("Contents")
    proxy.faults = Faults()
    finish(settings, proxy.endpoint, "--workers", "2")
    assert_all_on_s3_and_intact(s3_local, settings, tracks)


def test_runners_queued_for_the_task_workers_share_the_work(
    s3_local, proxy, owner, settings
):
    """`--enqueue N` queues N runners; task workers on any host run them."""
    tracks = make_local_tracks(
        owner, Path(settings.MEDIA_ROOT), 80, size=8 * 1024, seed=15
    )
    queued = start_command(
        settings, "--to", "s3", "--workers", "3", "--enqueue", "2", "--json",
        endpoint=proxy.endpoint,
    )  # fmt: skip
    out, err = queued.communicate(timeout=120)
    assert queued.returncode == 0, err[-3000:]
    assert len(json.loads(out)["enqueued"]) == 2
    assert Track.objects.filter(storage_backend="s3").count() == 0
    workers = [
        start_worker(settings, "--batch", "--max-tasks", "1", endpoint=proxy.endpoint)
        for _ in range(2)
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err[-3000:]
    runs = list(StorageMigrationRun.objects.all())
    assert len(runs) == 2
    assert {r.status for r in runs} == {"succeeded"}
    assert sum(r.moved for r in runs) == 80
    assert_all_on_s3_and_intact(s3_local, settings, tracks)
    assert set(proxy.puts().values()) == {1}
