"""Packaging: conformant output, atomic publish, retries, failures, S3."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import av
import pytest
from django.test import override_settings
from django.utils import timezone

from mediastore.backends import LocalMediaStorage, storage_for
from mediastore.errors import StorageUnavailable
from streaming.models import HlsPackage, PackageStatus
from streaming.services import hls_package_build, hls_package_request
from tests.audio import make_audio
from tests.streaming.conformance import check_master, check_media, file_size_covered
from tests.streaming.conftest import package_track
from tests.tracks.helpers import create_track
from tracks.models import Track


def read(package: HlsPackage, name: str, first: int = 0, size: int = -1) -> bytes:
    storage = storage_for(package.storage_backend)
    last = first + size - 1 if size >= 0 else package.files[name] - 1
    return b"".join(storage.read(package.directory + name, first, last))


def boxes(data: bytes) -> list[bytes]:
    """The top-level ISO BMFF box types of `data`, which must hold whole boxes."""
    types, position = [], 0
    while position < len(data):
        size = int.from_bytes(data[position : position + 4], "big")
        assert size >= 8, (position, size)
        types.append(data[position + 4 : position + 8])
        position += size
    assert position == len(data), "a range that cuts a box"
    return types


def unpackaged_track(client, path: Path) -> Track:
    body = create_track(client, path.read_bytes(), title="Song", visibility="public")
    return Track.objects.get(pk=body["id"])


def test_packaged_playlists_conform_to_rfc_8216(packaged) -> None:
    _track, package = packaged
    variants = check_master(read(package, "master.m3u8").decode())
    assert len(variants) == 3
    for variant, rendition in zip(variants, package.renditions, strict=True):
        assert int(variant["BANDWIDTH"]) == rendition["bandwidth"]
        media = check_media(read(package, variant["URI"]).decode(), segment_seconds=6)
        assert sum(d for d, _ in media.segments) == pytest.approx(14, abs=0.1)
        rung = variant["URI"].split("/")[0]
        # One file per rung, the playlist's ranges covering it exactly.
        assert {uri for _, uri in media.segments} == {media.map_uri} == {"media.mp4"}
        assert file_size_covered(media) == package.files[f"{rung}/media.mp4"]
        # The encoder hit its bitrate (within 15%: short input, pure tones).
        assert rendition["average_bandwidth"] == pytest.approx(
            rendition["bitrate"], rel=0.15
        )


def test_a_package_is_a_file_per_rung_plus_playlists_and_peaks(packaged) -> None:
    _track, package = packaged
    assert sorted(package.files) == [
        "128k/index.m3u8",
        "128k/media.mp4",
        "256k/index.m3u8",
        "256k/media.mp4",
        "64k/index.m3u8",
        "64k/media.mp4",
        "master.m3u8",
        "waveform.json",
    ]


def test_each_range_is_the_init_section_or_whole_fragments(packaged) -> None:
    _track, package = packaged
    for rendition in package.renditions:
        name = f"{rendition['name']}/media.mp4"
        assert rendition["file"] == "media.mp4"
        assert boxes(read(package, name, 0, rendition["init_size"])) == [
            b"ftyp",
            b"moov",
        ]
        for _name, _duration, size, offset in rendition["segments"]:
            assert boxes(read(package, name, offset, size)) == [
                b"sidx",
                b"moof",
                b"mdat",
            ]


def test_every_segment_decodes_on_its_own_after_the_init_section(packaged) -> None:
    # Independent segments (EXT-X-INDEPENDENT-SEGMENTS): a player that seeks
    # fetches the init section and one range, and decodes from its start.
    _track, package = packaged
    for rendition in package.renditions:
        name = f"{rendition['name']}/media.mp4"
        init = read(package, name, 0, rendition["init_size"])
        for _name, duration, size, offset in rendition["segments"]:
            data = init + read(package, name, offset, size)
            with av.open(io.BytesIO(data)) as container:
                samples = 0
                for frame in container.decode(audio=0):
                    samples += frame.samples
            assert samples / 44100 == pytest.approx(duration, abs=0.05)


def test_a_storage_failure_mid_package_publishes_nothing_and_a_retry_succeeds(
    auth_client, song_file, monkeypatch, settings
) -> None:
    track = unpackaged_track(auth_client, song_file)
    puts: list[str] = []
    real_put = LocalMediaStorage.put_file

    def failing_put(self, key, *args, **kwargs):
        if key.startswith("hls/") and len(puts) == 2:
            raise StorageUnavailable(details={"backend": "local"})
        puts.append(key)
        return real_put(self, key, *args, **kwargs)

    monkeypatch.setattr(LocalMediaStorage, "put_file", failing_put)
    requested = hls_package_request(track=track)
    package = hls_package_build(package_id=requested.pk)
    assert package is not None
    assert package.status == PackageStatus.FAILED
    assert package.error_code == "storage_unavailable"
    # Media files were stored first; none of them and no playlist are left.
    assert all(k.endswith(".mp4") for k in puts)
    root = settings.MEDIA_ROOT / package.directory
    assert not any(p.is_file() for p in root.rglob("*"))

    monkeypatch.setattr(LocalMediaStorage, "put_file", real_put)
    retried = hls_package_build(package_id=package.pk)
    assert retried is not None
    assert retried.status == PackageStatus.READY
    assert retried.content_hash == package.content_hash
    assert retried.attempts == 2
    assert (root / "master.m3u8").is_file()


def test_the_same_input_and_settings_reuse_one_directory(
    auth_client, song_file
) -> None:
    track = unpackaged_track(auth_client, song_file)
    first = hls_package_request(track=track)
    assert hls_package_request(track=track).pk == first.pk
    with override_settings(HLS_LADDER=[96]):
        other = hls_package_request(track=track)
    assert other.content_hash != first.content_hash
    assert HlsPackage.objects.filter(track=track).count() == 2


def test_a_live_lease_is_not_taken_over_but_an_expired_one_is(
    auth_client, song_file
) -> None:
    track = unpackaged_track(auth_client, song_file)
    package = hls_package_request(track=track)
    HlsPackage.objects.filter(pk=package.pk).update(
        status=PackageStatus.PROCESSING,
        lease_until=timezone.now() + timedelta(minutes=5),
    )
    built = hls_package_build(package_id=package.pk)
    assert built is not None
    assert built.status == PackageStatus.PROCESSING  # someone else's job
    # The worker crashed: its lease runs out, and the next attempt builds it.
    HlsPackage.objects.filter(pk=package.pk).update(
        lease_until=timezone.now() - timedelta(seconds=1)
    )
    built = hls_package_build(package_id=package.pk)
    assert built is not None
    assert built.status == PackageStatus.READY


def test_a_source_that_fails_to_decode_leaves_a_failed_package(
    auth_client, song_file, settings
) -> None:
    track = unpackaged_track(auth_client, song_file)
    # The stored original rots after the upload's checks passed.
    (settings.MEDIA_ROOT / track.storage_key).write_bytes(b"\x00garbage" * 4096)
    package = hls_package_build(package_id=hls_package_request(track=track).pk)
    assert package is not None
    assert package.status == PackageStatus.FAILED
    assert package.error_code in {"unreadable_source", "decode_failed", "no_audio"}
    assert package.error
    assert package.files == {}
    assert not HlsPackage.objects.filter(status=PackageStatus.READY).exists()


def test_a_missing_source_fails_with_its_reason(
    auth_client, song_file, settings
) -> None:
    track = unpackaged_track(auth_client, song_file)
    (settings.MEDIA_ROOT / track.storage_key).unlink()
    package = hls_package_build(package_id=hls_package_request(track=track).pk)
    assert package is not None
    assert package.error_code == "source_missing"


def test_deleting_the_track_removes_its_package_files(
    packaged, auth_client, settings, django_capture_on_commit_callbacks
) -> None:
    track, package = packaged
    root = settings.MEDIA_ROOT / package.directory
    assert (root / "master.m3u8").is_file()
    with django_capture_on_commit_callbacks(execute=True):
        response = auth_client.delete(f"/api/v1/tracks/{track.pk}/")
    assert response.status_code == 204
    assert not HlsPackage.objects.filter(pk=package.pk).exists()
    assert not any(p.is_file() for p in root.rglob("*"))


def test_mono_and_48k_sources_package_too(auth_client, audio_dir) -> None:
    source = make_audio(audio_dir / "mono.wav", fmt="wav", seconds=4, rate=48000)
    track = unpackaged_track(auth_client, source)
    package = hls_package_build(package_id=hls_package_request(track=track).pk)
    assert package is not None
    assert package.status == PackageStatus.READY, package.error


def test_a_track_on_s3_is_packaged_on_s3(
    s3, auth_client, song_file, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        track, package = package_track(auth_client, song_file, title="On S3")
    package.refresh_from_db()
    assert track.storage_backend == "s3"
    assert package.status == PackageStatus.READY, package.error
    assert package.storage_backend == "s3"
    head = s3.head_object(Bucket=s3.bucket, Key=package.directory + "master.m3u8")
    assert head["ContentType"] == "application/vnd.apple.mpegurl"
    segment = s3.head_object(Bucket=s3.bucket, Key=package.directory + "64k/media.mp4")
    assert segment["ContentType"] == "audio/mp4"
    assert "immutable" in segment["CacheControl"]
    listed = s3.list_objects_v2(Bucket=s3.bucket, Prefix=package.directory)
    assert {o["Key"][len(package.directory) :] for o in listed["Contents"]} == set(
        package.files
    )


@pytest.mark.django_db(transaction=True)
def test_an_upload_is_packaged_by_the_database_task_worker(
    settings, song_file, user, auth_client
) -> None:
    from django.core.management import call_command

    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    settings.HLS_PACKAGE_ON_UPLOAD = True
    track = unpackaged_track(auth_client, song_file)
    package = HlsPackage.objects.get(track=track)
    assert package.status == PackageStatus.PENDING
    call_command("db_worker", "--batch", "--no-startup-delay", "--no-reload")
    package.refresh_from_db()
    assert package.status == PackageStatus.READY, package.error
    assert package.attempts == 1
