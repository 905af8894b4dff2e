"""Superseded packages: the old one plays through its grace, then its files,
row and tally go, and the audit finds nothing left behind."""

from __future__ import annotations

import io
import json
import re
from datetime import timedelta
from pathlib import Path
from urllib.parse import urljoin

import av
import pytest
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone

from mediastore.backends import LocalMediaStorage
from mediastore.errors import StorageUnavailable
from mediastore.tally import tally_read, tally_recount
from streaming.backfill import hls_backfill_track
from streaming.models import HlsPackage, PackageStatus
from streaming.playlists import master_playlist, media_playlist
from streaming.renditions import Rendition, Segment
from streaming.services import (
    PACKAGE_TALLY,
    Retired,
    hls_content_hash,
    hls_package_build,
    hls_package_request,
    hls_package_settings,
    hls_packages_retire_due,
    superseded_grace_seconds,
)
from tests.streaming.conftest import package_track
from tests.streaming.test_serving import path_of
from tests.tracks.helpers import create_track
from tracks.models import Track

pytestmark = pytest.mark.django_db

# A package made with other settings stands for one of an earlier packager:
# both are a ready package of the track whose hash the current settings do
# not name, which is what a packager upgrade leaves behind.
OLD_LADDER = [96]


def master(client, track_id) -> str:
    body = client.get(f"/api/v1/tracks/{track_id}/hls").json()
    assert body["status"] == "ready", body
    return path_of(body["master_url"])


def package_hls() -> dict:
    out = io.StringIO()
    call_command("package_hls", "--json", stdout=out)
    return json.loads(out.getvalue())


def audit() -> dict:
    out = io.StringIO()
    call_command("migrate_storage", "--verify-only", "--json", stdout=out)
    return json.loads(out.getvalue())


@pytest.fixture
def old_package(auth_client, song_file, django_capture_on_commit_callbacks):
    with (
        override_settings(HLS_LADDER=OLD_LADDER),
        django_capture_on_commit_callbacks(execute=True),
    ):
        track, package = package_track(
            auth_client, song_file, title="Old", visibility="public"
        )
    package.refresh_from_db()
    assert package.status == PackageStatus.READY, package.error
    return track, package


def test_a_rebuilt_track_plays_its_old_package_through_the_grace_then_it_goes(
    auth_client, old_package, settings
):
    track, old = old_package
    old_master = master(auth_client, track.pk)
    assert old.content_hash in old_master
    old_media = urljoin(old_master, "96k/media.mp4")

    summary = package_hls()
    assert (summary["selected"], summary["ready"]) == (1, 1)
    assert summary["retired"] == {"packages": 0, "files": 0, "bytes": 0, "failed": 0}
    old.refresh_from_db()
    assert old.superseded_at is not None
    new = HlsPackage.objects.get(track=track, superseded_at__isnull=True)
    assert new.status == PackageStatus.READY
    # New listeners get the new package; holders of the old URLs still play.
    assert new.content_hash in master(auth_client, track.pk)
    assert auth_client.get(old_master).status_code == 200
    ranged = auth_client.get(old_media, HTTP_RANGE="bytes=0-99")
    assert ranged.status_code == 206
    # Both are stored meanwhile, and counted.
    assert tally_read(kind=PACKAGE_TALLY)["local"].rows == 2
    assert audit()["clean"] is True

    # Not before the grace is over.
    just_before = old.superseded_at + timedelta(seconds=superseded_grace_seconds() - 5)
    assert hls_packages_retire_due(now=just_before).packages == 0
    after = old.superseded_at + timedelta(seconds=superseded_grace_seconds() + 1)
    retired = hls_packages_retire_due(now=after)
    assert (retired.packages, retired.files) == (1, len(old.files))
    assert retired.bytes == old.total_bytes

    assert not HlsPackage.objects.filter(pk=old.pk).exists()
    root = Path(settings.MEDIA_ROOT) / old.directory
    assert not any(p.is_file() for p in root.rglob("*"))
    assert auth_client.get(old_master).status_code == 404
    # The tally follows, and agrees with a recount of the rows.
    counted = tally_read(kind=PACKAGE_TALLY)["local"]
    assert (counted.rows, counted.files) == (1, len(new.files))
    assert tally_recount()[PACKAGE_TALLY]["local"] == counted
    report = audit()
    assert report["clean"] is True, report
    assert report["orphans"] == []
    assert report["missing"] == []
    # The new package plays on.
    assert auth_client.get(master(auth_client, track.pk)).status_code == 200


def test_the_grace_is_never_shorter_than_a_player_can_hold_the_urls(settings):
    settings.HLS_SUPERSEDED_GRACE_SECONDS = 0
    settings.HLS_URL_TTL = 3600
    settings.CDN_TOKEN_TTL = 600
    settings.CDN_CACHE_CONTROL_PLAYLISTS = "public, max-age=60"
    assert superseded_grace_seconds() == 3660
    settings.HLS_SUPERSEDED_GRACE_SECONDS = 86400
    assert superseded_grace_seconds() == 86400


def test_a_failed_delete_keeps_the_row_and_the_next_sweep_finishes(
    old_package, monkeypatch
):
    _track, old = old_package
    package_hls()
    old.refresh_from_db()
    after = old.superseded_at + timedelta(seconds=superseded_grace_seconds() + 1)

    def unavailable(self, keys):
        raise StorageUnavailable(details={"backend": "local"})

    monkeypatch.setattr(LocalMediaStorage, "remove_many", unavailable)
    assert hls_packages_retire_due(now=after) == Retired(failed=1)
    # Nothing without its row: the row stays, superseded, with its files.
    assert HlsPackage.objects.filter(pk=old.pk, superseded_at__isnull=False).exists()
    monkeypatch.undo()
    assert hls_packages_retire_due(now=after).packages == 1
    assert not HlsPackage.objects.filter(pk=old.pk).exists()


def test_going_back_to_old_settings_rebuilds_the_superseded_package(
    auth_client, old_package, django_capture_on_commit_callbacks
):
    track, old = old_package
    package_hls()
    old.refresh_from_db()
    assert old.superseded_at is not None
    with override_settings(HLS_LADDER=OLD_LADDER):
        with django_capture_on_commit_callbacks(execute=True):
            again = hls_package_request(track=track)
        assert again.pk == old.pk
        again.refresh_from_db()
        # Built again (same directory), it is the live one; the other is not.
        assert again.status == PackageStatus.READY
        assert again.superseded_at is None
        assert master(auth_client, track.pk).count(old.content_hash) == 1
    other = HlsPackage.objects.exclude(pk=old.pk).get(track=track)
    assert other.superseded_at is not None


@pytest.mark.django_db(transaction=True)
def test_the_task_worker_retires_it_when_the_grace_is_over(
    old_package, settings, auth_client
):
    from django_tasks_db.models import DBTaskResult

    track, old = old_package
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    hls_package_request(track=track)
    call_command("db_worker", "--batch", "--no-startup-delay", "--no-reload")
    old.refresh_from_db()
    assert old.superseded_at is not None
    [retire] = DBTaskResult.objects.filter(task_path__endswith="retire_task")
    grace = superseded_grace_seconds()
    assert retire.run_after is not None
    assert abs((retire.run_after - old.superseded_at).total_seconds() - grace) < 1
    # The worker leaves it until then...
    call_command("db_worker", "--batch", "--no-startup-delay", "--no-reload")
    assert HlsPackage.objects.filter(pk=old.pk).exists()
    # ...and retires it once it is due (here: the grace made to have passed).
    DBTaskResult.objects.filter(pk=retire.pk).update(run_after=old.superseded_at)
    HlsPackage.objects.filter(pk=old.pk).update(
        superseded_at=old.superseded_at - timedelta(seconds=grace + 1)
    )
    call_command("db_worker", "--batch", "--no-startup-delay", "--no-reload")
    assert not HlsPackage.objects.filter(pk=old.pk).exists()
    assert HlsPackage.objects.filter(track=track).count() == 1


def legacy_package(track: Track, source: Path) -> HlsPackage:
    """A ready package as packager 2 made them: an init.mp4 and a file per
    segment in each rung, on local disk (FFmpeg's HLS muxer, as it wrote it)."""
    from django.conf import settings

    package_settings = {**hls_package_settings(), "ladder": [64], "packager": 2}
    content_hash = hls_content_hash(track=track, package_settings=package_settings)
    root = Path(settings.MEDIA_ROOT) / "hls" / content_hash
    rung = root / "64k"
    rung.mkdir(parents=True)
    with av.open(str(source)) as container:
        output = av.open(
            str(rung / "ffmpeg.m3u8"),
            mode="w",
            format="hls",
            options={
                "hls_time": "6",
                "hls_playlist_type": "vod",
                "hls_segment_type": "fmp4",
                "hls_fmp4_init_filename": "init.mp4",
                "hls_segment_filename": str(rung / "seg_%05d.m4s"),
                "start_number": "1",
            },
        )
        stream = output.add_stream("aac", rate=44100)
        stream.bit_rate = 64_000
        for frame in container.decode(audio=0):
            frame.pts = None
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode(None):
            output.mux(packet)
        output.close()
    text = (rung / "ffmpeg.m3u8").read_text()
    (rung / "ffmpeg.m3u8").unlink()
    segments = [
        Segment(name, float(duration), (rung / name).stat().st_size)
        for duration, name in re.findall(r"#EXTINF:([0-9.]+),\s*\n(seg_\d+\.m4s)", text)
    ]
    rendition = Rendition(
        name="64k",
        bitrate=64_000,
        init_size=(rung / "init.mp4").stat().st_size,
        segments=segments,
    )
    (rung / "index.m3u8").write_text(media_playlist(rendition))
    (root / "master.m3u8").write_text(master_playlist([rendition]))
    files = {
        p.relative_to(root).as_posix(): p.stat().st_size
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
    package = HlsPackage.objects.create(
        track=track,
        content_hash=content_hash,
        status=PackageStatus.READY,
        storage_backend=track.storage_backend,
        settings=package_settings,
        renditions=[rendition.as_dict()],
        files=files,
        duration_seconds=rendition.duration,
        segment_count=len(segments),
        total_bytes=sum(files.values()),
    )
    tally_recount()
    return package


def test_a_packager_2_package_plays_until_its_single_file_rebuild_replaces_it(
    auth_client, song_file, settings
):
    body = create_track(
        auth_client, song_file.read_bytes(), name="song.flac", visibility="public"
    )
    track = Track.objects.get(pk=body["id"])
    old = legacy_package(track, song_file)
    assert len(old.files) == 2 + 1 + len(old.renditions[0]["segments"])
    old_master = master(auth_client, track.pk)
    assert old.content_hash in old_master
    old_media = urljoin(old_master, "64k/index.m3u8")
    assert "seg_00001.m4s" in auth_client.get(old_media).content.decode()

    # The backfill finds it due (its hash is not the current settings'),
    # builds the single-file package and supersedes the old one.
    summary = package_hls()
    assert (summary["selected"], summary["ready"], summary["failed"]) == (1, 1, 0)
    new = HlsPackage.objects.get(track=track, superseded_at__isnull=True)
    assert len(new.files) == 8
    assert new.content_hash in master(auth_client, track.pk)
    # A player holding the old playlist goes on to its end meanwhile.
    assert auth_client.get(urljoin(old_media, "seg_00003.m4s")).status_code == 200
    assert package_hls()["selected"] == 0  # nothing due twice

    old.refresh_from_db()
    after = old.superseded_at + timedelta(seconds=superseded_grace_seconds() + 1)
    assert hls_packages_retire_due(now=after).files == len(old.files)
    assert not (Path(settings.MEDIA_ROOT) / old.directory).exists() or not any(
        p.is_file() for p in (Path(settings.MEDIA_ROOT) / old.directory).rglob("*")
    )
    assert auth_client.get(old_media).status_code == 404
    report = audit()
    assert report["clean"] is True, report
    assert tally_read(kind=PACKAGE_TALLY)["local"].files == len(new.files)


def test_going_back_to_old_settings_through_the_backfill_revives_it(
    auth_client, old_package
):
    track, old = old_package
    package_hls()
    with override_settings(HLS_LADDER=OLD_LADDER):
        # Due again (its package is superseded); made live, not rebuilt.
        summary = package_hls()
        assert (summary["selected"], summary["ready"]) == (1, 1)
        old.refresh_from_db()
        assert old.superseded_at is None
        assert old.attempts == 1
        assert old.content_hash in master(auth_client, track.pk)
    other = HlsPackage.objects.exclude(pk=old.pk).get(track=track)
    assert other.superseded_at is not None


def test_a_forced_rebuild_of_a_superseded_package_makes_it_live(old_package):
    track, old = old_package
    package_hls()
    with override_settings(HLS_LADDER=OLD_LADDER):
        result = hls_backfill_track(track_id=track.pk, force=True)
    assert result.outcome == "ready"
    old.refresh_from_db()
    assert old.superseded_at is None
    assert old.attempts == 2
    other = HlsPackage.objects.exclude(pk=old.pk).get(track=track)
    assert other.superseded_at is not None
    # Exactly one live package, whatever was built last.
    live = HlsPackage.objects.filter(track=track, superseded_at__isnull=True)
    assert list(live) == [old]


def test_a_track_never_loses_its_last_playable_package(auth_client, old_package):
    track, old = old_package
    package_hls()
    old.refresh_from_db()
    # The new package is lost (a failed forced rebuild, say): the old one is
    # the only one that plays, so it is not retired, however late it is.
    new = HlsPackage.objects.get(track=track, superseded_at__isnull=True)
    HlsPackage.objects.filter(pk=new.pk).update(
        status=PackageStatus.FAILED, files={}, error_code="decode_failed"
    )
    far = old.superseded_at + timedelta(seconds=superseded_grace_seconds() * 10)
    assert hls_packages_retire_due(now=far) == Retired()
    assert HlsPackage.objects.filter(pk=old.pk).exists()
    assert old.content_hash in master(auth_client, track.pk)


def test_a_package_queued_for_another_packager_is_not_built(auth_client, song_file):
    body = create_track(
        auth_client, song_file.read_bytes(), name="song.flac", visibility="public"
    )
    track = Track.objects.get(pk=body["id"])
    # Queued by a process of the previous release, taken by this one's worker.
    outdated = {**hls_package_settings(), "packager": 2}
    row = HlsPackage.objects.create(
        track=track,
        content_hash=hls_content_hash(track=track, package_settings=outdated),
        settings=outdated,
    )
    built = hls_package_build(package_id=row.pk)
    assert built is not None
    assert (built.status, built.error_code) == (PackageStatus.FAILED, "outdated")
    assert built.files == {}
    # The backfill builds the current one.
    summary = package_hls()
    assert (summary["selected"], summary["ready"]) == (1, 1)


@pytest.mark.django_db(transaction=True)
def test_a_retirement_the_store_refused_is_tried_again_later(
    old_package, settings, monkeypatch
):
    from django_tasks_db.models import DBTaskResult

    from streaming.tasks import RETIRE_RETRY_SECONDS, hls_package_retire_task

    _track, old = old_package
    package_hls()
    old.refresh_from_db()
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    HlsPackage.objects.filter(pk=old.pk).update(
        superseded_at=old.superseded_at
        - timedelta(seconds=superseded_grace_seconds() + 1)
    )

    def unavailable(self, keys):
        raise StorageUnavailable(details={"backend": "local"})

    monkeypatch.setattr(LocalMediaStorage, "remove_many", unavailable)
    before = timezone.now()
    answer = hls_package_retire_task.call(package_id=old.pk)
    assert answer["retry"] is True
    [again] = DBTaskResult.objects.filter(task_path__endswith="retire_task")
    assert again.run_after is not None
    waited = (again.run_after - before).total_seconds()
    assert RETIRE_RETRY_SECONDS - 5 < waited < RETIRE_RETRY_SECONDS + 60
    assert HlsPackage.objects.filter(pk=old.pk).exists()
    monkeypatch.undo()
    assert hls_package_retire_task.call(package_id=old.pk)["retired"] is True
    assert not HlsPackage.objects.filter(pk=old.pk).exists()
