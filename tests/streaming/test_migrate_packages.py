"""`migrate_storage` moves HLS packages with their tracks, on a real S3 server."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command
from django.urls import Resolver404, resolve
from django.utils import timezone

from cdn.origin import origin_token
from cdn.services import cdn_cache_control
from mediastore.backends import storage_for
from streaming.media_types import hls_content_type
from streaming.models import HlsPackage
from streaming.playback import hls_origin_scope
from tracks.attachments import attachments_of
from tracks.migration.claims import Claimer
from tracks.migration.copying import track_copy
from tracks.migration.settling import tracks_flip
from tracks.models import SHARED_VISIBILITIES, StorageMigrationRun, Track

pytestmark = pytest.mark.django_db


@pytest.fixture
def local_package(s3_local, packaged):
    """A public track and its ready package, both on local disk."""
    return packaged


def migrate(*args: str) -> dict:
    out = io.StringIO()
    call_command("migrate_storage", *args, "--json", stdout=out)
    return json.loads(out.getvalue())


def migrate_failing(*args: str) -> dict:
    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("migrate_storage", *args, "--json", stdout=out)
    return json.loads(out.getvalue())


def local_dir(package: HlsPackage) -> Path:
    return Path(django_settings.MEDIA_ROOT) / package.directory


def served(client, package: HlsPackage, name: str) -> bytes:
    """A file of the package as listeners get it: through the HLS origin when
    its URLs are routed, else read from where the row says it is."""
    expires = int(time.time()) + 600
    token = origin_token(
        hls_origin_scope(
            package.content_hash,
            shared=package.track.visibility in SHARED_VISIBILITIES,
        ),
        expires,
    )
    url = f"/origin/hls/{expires}/{token}/{package.content_hash}/{name}"
    try:
        resolve(url)
    except Resolver404:
        package.refresh_from_db()
        storage = storage_for(package.storage_backend)
        size = package.files[name]
        return b"".join(storage.read(package.directory + name, 0, size - 1))
    response = client.get(url)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == hls_content_type(name)
    if response.streaming:
        return b"".join(response.streaming_content)
    return response.content


def test_dry_run_counts_package_files(local_package):
    track, package = local_package
    summary = migrate("--to", "s3", "--dry-run")
    assert summary == {
        "dry_run": True,
        "target": "s3",
        "rows": 1,
        "bytes": track.size_bytes,
        "package_files": len(package.files),
        "package_bytes": sum(package.files.values()),
    }
    out = io.StringIO()
    call_command("migrate_storage", "--to", "s3", "--dry-run", stdout=out)
    assert f"with {len(package.files)} package files" in out.getvalue()
    assert HlsPackage.objects.get().storage_backend == "local"


def test_to_s3_and_back_moves_the_package_and_it_keeps_playing(local_package, client):
    track, package = local_package
    names = sorted(package.files)
    originals = {n: (local_dir(package) / n).read_bytes() for n in names}
    # Served from local disk first, which also fills the origin's cache.
    assert served(client, package, "master.m3u8") == originals["master.m3u8"]

    summary = migrate("--to", "s3", "--workers", "2")
    assert (summary["status"], summary["moved"]) == ("succeeded", 1)
    assert summary["package_files"] == len(names)
    assert summary["package_bytes"] == sum(package.files.values())
    package.refresh_from_db()
    assert package.storage_backend == "s3"
    assert Track.objects.get(pk=track.pk).storage_backend == "s3"
    s3 = storage_for("s3")
    client_s3 = s3.client  # type: ignore[attr-defined]
    for name in names:
        key = package.directory + name
        head = client_s3.head_object(Bucket=s3.bucket_name, Key=key)  # type: ignore[attr-defined]
        assert head["ContentLength"] == package.files[name]
        assert head["ContentType"] == hls_content_type(name)
        assert head["CacheControl"] == cdn_cache_control(name=name)
        metadata = {k.lower(): v for k, v in head["Metadata"].items()}
        assert metadata["sha256"] == hashlib.sha256(originals[name]).hexdigest()

    # The local copies stay until --purge-local, which then removes them
    # (the S3 objects checked first); the origin serves from S3 throughout.
    assert (local_dir(package) / "master.m3u8").is_file()
    assert migrate("--verify-only")["clean"] is True
    purged = migrate("--purge-local", "--older-than", "0")
    assert purged["purged"] == 1
    assert purged["package_purged"] == 1
    assert purged["package_files"] == len(names)
    assert purged["package_bytes"] == sum(package.files.values())
    assert not local_dir(package).exists()
    for name in names:
        assert served(client, package, name) == originals[name]
    assert migrate("--verify-only")["clean"] is True

    back = migrate("--to", "local")
    assert (back["status"], back["moved"]) == ("succeeded", 1)
    assert back["package_files"] == len(names)
    package.refresh_from_db()
    assert package.storage_backend == "local"
    for name in names:
        assert (local_dir(package) / name).read_bytes() == originals[name]
    # Gone from S3 would not matter now: the origin reads local disk.
    client_s3.delete_object(
        Bucket=s3.bucket_name, Key=package.directory + "master.m3u8"
    )  # type: ignore[attr-defined]
    assert served(client, package, "master.m3u8") == originals["master.m3u8"]


def test_a_rerun_finds_package_files_already_on_s3(local_package):
    _track, package = local_package
    migrate("--to", "s3")
    # Back to local with its local copies still there: nothing to download.
    back = migrate("--to", "local")
    assert (back["moved"], back["already_there"]) == (0, 1)
    assert (back["package_files"], back["package_already_there"]) == (
        0,
        len(package.files),
    )
    # And to S3 again: every object is found verified, none uploaded.
    again = migrate("--to", "s3")
    assert (again["package_files"], again["package_already_there"]) == (
        0,
        len(package.files),
    )
    package.refresh_from_db()
    assert package.storage_backend == "s3"


def test_a_bad_package_file_fails_the_move_and_leaves_both_on_local(
    local_package, client
):
    track, package = local_package
    # The last media file in copy order: the ones before it go up first.
    segment = max(n for n in package.files if n.endswith("media.mp4"))
    path = local_dir(package) / segment
    saved = path.read_bytes()

    path.write_bytes(saved[:-10])
    summary = migrate_failing("--to", "s3")
    assert summary["failures"] == {"corrupt_package_file": 1}

    path.unlink()
    summary = migrate_failing("--to", "s3")
    assert summary["failures"] == {"missing_package_file": 1}
    row = Track.objects.get(pk=track.pk)
    assert (row.storage_backend, row.migration_state) == ("local", "failed")
    assert row.migration_error.startswith("missing_package_file")
    assert segment in row.migration_error
    package.refresh_from_db()
    assert package.storage_backend == "local"
    assert StorageMigrationRun.objects.filter(status="failed").count() == 2
    # --allow-missing covers missing package files as it does originals.
    assert migrate("--to", "s3", "--allow-missing")["failures"] == {
        "missing_package_file": 1
    }
    # The track still plays from local disk; restored, it moves.
    assert served(client, package, "master.m3u8")
    path.write_bytes(saved)
    summary = migrate("--to", "s3")
    # The original went up with the first attempt; so did the package files
    # copied before the bad one: the re-run finds them verified.
    assert (summary["already_there"], summary["failed"]) == (1, 0)
    assert summary["package_files"] + summary["package_already_there"] == len(
        package.files
    )
    assert summary["package_already_there"] > 0
    package.refresh_from_db()
    assert package.storage_backend == "s3"


def test_a_package_rebuilt_during_the_copy_stays_on_its_backend(local_package, client):
    """The flip moves only the package version it copied; a build that
    published on the source meanwhile keeps its own storage_backend."""
    track, package = local_package
    [claimed] = Claimer(runner="r1", target="s3", lease_seconds=60).claim(5)
    groups = attachments_of(track_ids=[claimed.pk], backend="local")
    outcome = track_copy(track=claimed, target="s3", attachments=groups[track.pk])
    assert outcome.kind == "moved"
    assert outcome.attached["package"].files == len(package.files)
    # A rebuild finished on local disk after the copy was read.
    HlsPackage.objects.filter(pk=package.pk).update(finished_at=timezone.now())
    flipped = tracks_flip(runner="r1", target="s3", verified=[(claimed, outcome)])
    assert flipped == {track.pk}
    assert Track.objects.get(pk=track.pk).storage_backend == "s3"
    package.refresh_from_db()
    assert package.storage_backend == "local"
    shutil.rmtree(Path(django_settings.MEDIA_ROOT) / "tracks")
    assert served(client, package, "master.m3u8")
    # The purge leaves the local files of a package recorded on local.
    assert "package_purged" not in migrate("--purge-local", "--older-than", "0")
    assert (local_dir(package) / "master.m3u8").is_file()


def test_verify_only_reports_package_files_and_hls_orphans(local_package):
    track, package = local_package
    assert migrate("--verify-only")["package_files_checked"] == len(package.files)
    migrate("--to", "s3")
    s3 = storage_for("s3")
    client_s3 = s3.client  # type: ignore[attr-defined]
    bucket = s3.bucket_name  # type: ignore[union-attr]
    report = migrate("--verify-only")
    # Package files on both backends belong to a row: none is an orphan.
    assert report["clean"] is True, report
    assert report["package_files_checked"] == len(package.files)

    missing = package.directory + "128k/index.m3u8"
    client_s3.delete_object(Bucket=bucket, Key=missing)
    client_s3.put_object(
        Bucket=bucket, Key=package.directory + "64k/media.mp4", Body=b"short"
    )
    stray = "hls/" + "ab" * 32 + "/master.m3u8"
    client_s3.put_object(Bucket=bucket, Key=stray, Body=b"#EXTM3U\n")
    orphan_dir = Path(django_settings.MEDIA_ROOT) / "hls" / ("cd" * 32) / "64k"
    orphan_dir.mkdir(parents=True)
    (orphan_dir / "media.mp4").write_bytes(b"x" * 7)

    report = migrate_failing("--verify-only")
    assert report["missing"] == [
        {
            "track": str(track.pk),
            "package": package.content_hash,
            "backend": "s3",
            "key": missing,
        }
    ]
    [mismatch] = report["mismatched"]
    assert (mismatch["key"], mismatch["size"]) == (
        package.directory + "64k/media.mp4",
        5,
    )
    assert mismatch["expected_size"] == package.files["64k/media.mp4"]
    assert report["orphans"] == [
        {
            "backend": "local",
            "key": "hls/" + "cd" * 32 + "/64k/media.mp4",
            "size": 7,
        },
        {"backend": "s3", "key": stray, "size": 8},
    ]
    out = io.StringIO()
    with pytest.raises(CommandError, match="does not match"):
        call_command("migrate_storage", "--verify-only", stdout=out)
    assert f"missing: s3 {missing}" in out.getvalue()
