"""The S3 endpoint gone for 10 s mid-migration and mid-HLS-publish, and
gone while a track is uploaded.

A fault proxy in front of `rclone serve s3` resets every connection for ten
seconds, starting while rows are moving or while a package's files are
being written. Either the work rides through on its retries, or it fails
cleanly: nothing flipped or marked ready without its bytes, an error a
person can read, and a second run that finishes.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from streaming.models import HlsPackage, PackageStatus
from streaming.services import hls_package_build, hls_package_request
from tests.audio import make_audio
from tests.s3proxy import S3Proxy
from tests.streaming.test_packaging import unpackaged_track
from tests.tracks.helpers import assert_error, upload
from tests.tracks.migration_helpers import make_local_tracks, start_command
from tracks.models import Track

OUTAGE_SECONDS = 10.0


@pytest.fixture(scope="module")
def song(tmp_path_factory) -> Path:
    """14 s of FLAC: a package of a few segments per rung."""
    return make_audio(
        tmp_path_factory.mktemp("outage") / "song.flac", fmt="flac", seconds=14
    )


@pytest.fixture
def proxy(s3_server):
    running = S3Proxy(upstream=s3_server.endpoint)
    running.faults.outage_seconds = OUTAGE_SECONDS
    running.endpoint = running.start()  # type: ignore[attr-defined]
    yield running
    running.stop()


def assert_on_s3_whole(s3, tracks) -> None:
    for track in tracks:
        head = s3.head_object(Bucket=s3.bucket, Key=track.storage_key)
        assert head["ContentLength"] == track.size_bytes


@pytest.mark.django_db(transaction=True)
def test_a_migration_through_a_lost_endpoint_fails_cleanly_and_resumes(
    s3_local, proxy, settings
):
    owner = get_user_model().objects.create_user("mover")
    make_local_tracks(owner, Path(settings.MEDIA_ROOT), 300, size=16 * 1024, seed=31)
    args = ("--to", "s3", "--workers", "2", "--batch-size", "8")
    run = start_command(settings, *args, endpoint=proxy.endpoint)
    deadline = time.monotonic() + 60
    while Track.objects.filter(storage_backend="s3").count() < 20:
        assert run.poll() is None, "the run finished before the outage"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proxy.outage()
    _, err = run.communicate(timeout=300)

    assert "Traceback" not in err
    flipped = list(Track.objects.filter(storage_backend="s3"))
    # Nothing flipped without its object, whether the run finished or not.
    assert_on_s3_whole(s3_local, flipped)
    if run.returncode:
        # Rows whose copies ran out of retries: named, with what to do.
        assert "did not move" in err
        assert "rerun to retry" in err
        # One log line per failed request, not object_store's page of it.
        assert "Debug source" not in err
    # The endpoint is back: a second run moves whatever is left.
    while proxy.faults.down:
        time.sleep(0.1)
    again = start_command(settings, *args, endpoint=proxy.endpoint)
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err[-3000:]
    assert not Track.objects.filter(storage_backend="local").exists()
    assert_on_s3_whole(s3_local, Track.objects.all())


@pytest.mark.django_db
def test_a_package_published_through_a_lost_endpoint_is_never_half_ready(
    s3, proxy, settings, auth_client, song
):
    settings.AWS_S3_ENDPOINT_URL = proxy.endpoint
    track = unpackaged_track(auth_client, song)
    assert track.storage_backend == "s3"
    # Gone after the package's first three files are written.
    proxy.faults.outage_after_puts = 3
    package = hls_package_build(package_id=hls_package_request(track=track).pk)
    assert package is not None
    assert proxy.outages, "the outage did not happen during the publish"
    if package.status == PackageStatus.READY:
        stored = package.files
    else:
        # Failed with the storage's code; not ready, so never served.
        assert package.status == PackageStatus.FAILED
        assert package.error_code == "storage_unavailable", package.error
        while proxy.faults.down:
            time.sleep(0.1)
        package = hls_package_build(package_id=hls_package_request(track=track).pk)
        assert package is not None
        assert package.status == PackageStatus.READY, package.error
        stored = package.files
    listed = s3.list_objects_v2(Bucket=s3.bucket, Prefix=package.directory)
    keys = {o["Key"][len(package.directory) :] for o in listed.get("Contents", [])}
    assert keys == set(stored)
    assert (
        HlsPackage.objects.filter(track=track, status=PackageStatus.READY).count() == 1
    )


@pytest.mark.django_db
def test_an_upload_while_the_endpoint_is_gone_is_503_and_leaves_nothing(
    s3, proxy, settings, auth_client, wav_file
):
    settings.AWS_S3_ENDPOINT_URL = proxy.endpoint
    proxy.faults.down = True
    response = upload(auth_client, wav_file.read_bytes())
    assert_error(response, 503, "storage_unavailable")
    assert not Track.all_objects.exists()
    proxy.faults.down = False
    assert s3.list_objects_v2(Bucket=s3.bucket).get("KeyCount", 0) == 0
