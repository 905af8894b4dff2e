"""Packaging on upload: the task builds a ready package on the track's backend."""

from __future__ import annotations

from django.conf import settings

from mediastore.backends import storage_for
from streaming.models import PackageStatus


def test_upload_is_packaged_on_local_disk(packaged) -> None:
    _track, package = packaged
    assert package.status == PackageStatus.READY
    assert package.storage_backend == "local"
    assert [r["name"] for r in package.renditions] == ["64k", "128k", "256k"]
    assert package.segment_count == 9
    assert abs(package.duration_seconds - 14) < 0.1
    assert package.loudness_lufs is not None
    assert -30 < package.loudness_lufs < 0
    assert package.true_peak_dbtp is not None
    assert package.true_peak_dbtp < 0
    root = settings.MEDIA_ROOT / package.directory
    assert (root / "master.m3u8").is_file()
    for name, size in package.files.items():
        assert (root / name).stat().st_size == size
    assert storage_for("local").stat(package.directory + "64k/media.mp4") is not None
