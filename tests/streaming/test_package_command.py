"""`manage.py package_hls`: backfill HLS packages in-process or through workers."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError

from streaming.models import HlsPackage, PackageStatus
from tests.tracks.helpers import create_track
from tracks.models import Track
from tracks.services import track_take_down

pytestmark = pytest.mark.django_db


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("package_hls", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def run_json(*args: str) -> dict:
    out, _err = run("--json", *args)
    return json.loads(out)


@pytest.fixture
def tracks(auth_client, wav_file: Path) -> list[Track]:
    """Two uploads of a 3 s WAV, neither packaged (packaging on upload is off)."""
    content = wav_file.read_bytes()
    ids = [create_track(auth_client, content, title=t)["id"] for t in ("One", "Two")]
    return [Track.objects.get(pk=pk) for pk in ids]


def corrupt(track: Track) -> None:
    """Overwrite the stored original with bytes no decoder accepts."""
    path = Path(settings.MEDIA_ROOT) / track.storage_key
    assert path.is_file()
    path.write_bytes(b"\x00garbage, not audio\xff" * 512)


def test_backfill_packages_every_track_without_a_ready_package(tracks) -> None:
    assert not HlsPackage.objects.exists()
    out, err = run()
    packages = HlsPackage.objects.all()
    assert {p.track_id for p in packages} == {t.pk for t in tracks}
    assert {p.status for p in packages} == {PackageStatus.READY}
    for package in packages:
        assert (Path(settings.MEDIA_ROOT) / package.directory / "master.m3u8").is_file()
    assert "2 track(s) selected" in out
    assert "2 ready, 0 failed" in out
    assert "real-time factor" in out
    # Without a terminal: one plain line per track on stderr.
    assert err.count("package_hls: ") == 2
    assert "1/2" in err
    assert "2/2" in err

    out, _err = run()
    assert "0 track(s) selected" in out
    assert "2 already ready" in out
    assert HlsPackage.objects.count() == 2


def test_track_option_packages_only_the_named_tracks(tracks) -> None:
    one, two = tracks
    summary = run_json("--track", str(two.pk))
    assert summary["selected"] == 1
    assert summary["ready"] == 1
    assert [t["track_id"] for t in summary["tracks"]] == [str(two.pk)]
    assert not HlsPackage.objects.filter(track=one).exists()
    assert HlsPackage.objects.get(track=two).status == PackageStatus.READY
    # Named again, a ready track is left as it is.
    again = run_json("--track", str(two.pk))
    assert again["selected"] == 0
    assert again["skipped"]["already_ready"] == 1


def test_force_rebuilds_into_the_same_directory(tracks) -> None:
    track = tracks[0]
    first = run_json("--track", str(track.pk))["tracks"][0]
    package = HlsPackage.objects.get(track=track)
    finished = package.finished_at

    rebuilt = run_json("--track", str(track.pk), "--force")
    assert rebuilt["force"] is True
    assert rebuilt["ready"] == 1
    result = rebuilt["tracks"][0]
    assert result["content_hash"] == first["content_hash"] == package.content_hash
    assert result["package_id"] == package.pk
    package.refresh_from_db()
    assert package.status == PackageStatus.READY
    assert package.attempts == 2
    assert package.finished_at > finished
    assert HlsPackage.objects.filter(track=track).count() == 1
    root = Path(settings.MEDIA_ROOT) / package.directory
    for name, size in package.files.items():
        assert (root / name).stat().st_size == size


def test_json_summary_reports_counts_time_and_real_time_factor(tracks) -> None:
    summary = run_json()
    assert summary["mode"] == "build"
    assert summary["force"] is False
    assert summary["interrupted"] is False
    assert (summary["selected"], summary["ready"], summary["failed"]) == (2, 2, 0)
    assert (summary["queued"], summary["busy"]) == (0, 0)
    assert summary["failures"] == {}
    assert summary["failed_tracks"] == []
    assert summary["skipped"] == {"taken_down": 0, "already_ready": 0, "during_run": 0}
    assert summary["audio_seconds"] == pytest.approx(6.0, abs=0.2)
    assert summary["seconds"] > 0
    assert summary["realtime_factor"] == pytest.approx(
        summary["audio_seconds"] / summary["seconds"], rel=0.05
    )
    assert {t["outcome"] for t in summary["tracks"]} == {"ready"}
    assert set(summary["tracks"][0]) == {
        "track_id",
        "outcome",
        "package_id",
        "content_hash",
        "error_code",
        "error",
        "audio_seconds",
        "seconds",
    }


def test_a_corrupt_file_fails_with_its_reason_and_a_nonzero_exit(tracks) -> None:
    bad, good = tracks
    corrupt(bad)
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError) as failure:
        call_command("package_hls", "--json", stdout=out, stderr=err)
    # manage.py exits with the error's returncode (run_from_argv).
    assert failure.value.returncode == 1
    assert "1 package(s) failed: unreadable_source=1" in str(failure.value)
    summary = json.loads(out.getvalue())
    package = HlsPackage.objects.get(track=bad)
    assert package.status == PackageStatus.FAILED
    assert package.error_code == "unreadable_source"
    assert package.error
    assert (summary["ready"], summary["failed"]) == (1, 1)
    assert summary["failures"] == {"unreadable_source": 1}
    assert summary["failed_tracks"] == [
        {
            "track": str(bad.pk),
            "package": package.pk,
            "code": "unreadable_source",
            "error": package.error,
        }
    ]
    assert HlsPackage.objects.get(track=good).status == PackageStatus.READY
    # No file of the failed package is left behind.
    assert not (Path(settings.MEDIA_ROOT) / package.directory).exists() or not any(
        (Path(settings.MEDIA_ROOT) / package.directory).rglob("*.*")
    )


def test_a_failure_is_listed_in_the_text_summary(tracks) -> None:
    corrupt(tracks[0])
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError, match="unreadable_source=1"):
        call_command(
            "package_hls", "--track", str(tracks[0].pk), stdout=out, stderr=err
        )
    assert "0 ready, 1 failed" in out.getvalue()
    assert "failed: unreadable_source x1" in out.getvalue()
    assert f"{tracks[0].pk} unreadable_source:" in out.getvalue()
    assert "failed unreadable_source:" in err.getvalue()


def test_taken_down_tracks_are_skipped_and_said_so(tracks) -> None:
    down, up = tracks
    track_take_down(track=down, reason="DMCA notice 42")
    out, _err = run()
    assert "1 taken down" in out
    assert not HlsPackage.objects.filter(track=down).exists()
    assert HlsPackage.objects.get(track=up).status == PackageStatus.READY
    # Even when named.
    summary = run_json("--track", str(down.pk), "--force")
    assert summary["selected"] == 0
    assert summary["skipped"]["taken_down"] == 1
    assert summary["taken_down_tracks"] == [str(down.pk)]
    assert not HlsPackage.objects.filter(track=down).exists()


def test_limit_packages_at_most_n_tracks(tracks) -> None:
    summary = run_json("--limit", "1")
    assert (summary["selected"], summary["ready"]) == (1, 1)
    assert HlsPackage.objects.count() == 1
    # The newest first.
    assert summary["tracks"][0]["track_id"] == str(tracks[1].pk)
    with pytest.raises(CommandError, match="--limit"):
        run("--limit", "0")


def test_queue_hands_the_builds_to_the_task_workers(
    tracks, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        summary = run_json("--queue")
    assert summary["mode"] == "queue"
    assert (summary["queued"], summary["ready"]) == (2, 0)
    assert summary["realtime_factor"] is None
    assert set(HlsPackage.objects.values_list("status", flat=True)) == {
        PackageStatus.PENDING
    }
    # The tasks go out on commit; the immediate backend builds them there.
    for callback in callbacks:
        callback()
    assert set(HlsPackage.objects.values_list("status", flat=True)) == {
        PackageStatus.READY
    }


def test_unknown_or_malformed_track_ids_are_refused(tracks) -> None:
    with pytest.raises(CommandError, match="no such track: not-a-uuid"):
        run("--track", "not-a-uuid")
    missing = "00000000-0000-4000-8000-000000000000"
    with pytest.raises(CommandError, match=missing):
        run("--track", str(tracks[0].pk), "--track", missing)
    assert not HlsPackage.objects.exists()


def test_a_package_over_its_time_limit_fails_with_timeout(tracks, settings) -> None:
    # Any real encode takes longer than a microsecond.
    settings.HLS_PACKAGE_MAX_SECONDS = 1e-6
    out = StringIO()
    with pytest.raises(CommandError) as failure:
        call_command("package_hls", "--json", stdout=out, stderr=StringIO())
    assert "timeout=2" in str(failure.value)
    for package in HlsPackage.objects.all():
        assert package.status == PackageStatus.FAILED
        assert package.error_code == "timeout"
        assert package.files == {}
