"""Playlist writing: the pure functions, checked against RFC 8216's rules."""

from __future__ import annotations

import pytest

from streaming.playlists import (
    VERSION,
    master_playlist,
    media_playlist,
    target_duration,
)
from streaming.renditions import MEDIA_NAME, Rendition, Segment
from tests.streaming.conformance import (
    check_master,
    check_media,
    file_size_covered,
    parse_media,
    required_version,
)


def rendition(name: str = "128k", durations=(6.013968, 5.990748, 2.1)) -> Rendition:
    """A rung as packager 3 writes it: one file, each segment a range of it."""
    segments = []
    offset = 765
    for d in durations:
        size = int(d * 16_000) + 500
        segments.append(Segment(MEDIA_NAME, d, size, offset))
        offset += size
    return Rendition(
        name=name, bitrate=128_000, init_size=765, segments=segments, file=MEDIA_NAME
    )


def rendition_v2(durations=(6.013968, 5.990748, 2.1)) -> Rendition:
    """A rung as packages made before packager 3 hold it: a file a segment."""
    return Rendition(
        name="128k",
        bitrate=128_000,
        init_size=765,
        segments=[
            Segment(f"seg_{i:05d}.m4s", d, int(d * 16_000) + 500)
            for i, d in enumerate(durations, start=1)
        ],
    )


def test_media_playlist_addresses_one_file_by_byte_ranges() -> None:
    text = media_playlist(rendition())
    playlist = check_media(text, segment_seconds=6)
    assert playlist.version == VERSION == 6
    assert playlist.target_duration == 6
    assert playlist.map_uri == "media.mp4"
    assert playlist.map_range == (765, 0)
    assert [uri for _, uri in playlist.segments] == ["media.mp4"] * 3
    assert playlist.ranges == [(96723, 765), (96351, 97488), (34100, 193839)]
    assert file_size_covered(playlist) == 765 + 96723 + 96351 + 34100
    assert '#EXT-X-MAP:URI="media.mp4",BYTERANGE="765@0"\n' in text
    assert "#EXT-X-BYTERANGE:96351@97488\nmedia.mp4\n" in text
    assert text.endswith("#EXT-X-ENDLIST\n")


def test_a_rung_made_before_packager_3_keeps_a_file_per_segment() -> None:
    text = media_playlist(rendition_v2())
    playlist = check_media(text, segment_seconds=6)
    assert playlist.map_uri == "init.mp4"
    assert playlist.map_range is None
    assert "BYTERANGE" not in text
    assert [uri for _, uri in playlist.segments] == [
        "seg_00001.m4s",
        "seg_00002.m4s",
        "seg_00003.m4s",
    ]
    assert rendition_v2().files == [
        "init.mp4",
        "seg_00001.m4s",
        "seg_00002.m4s",
        "seg_00003.m4s",
    ]
    assert rendition().files == ["media.mp4"]


@pytest.mark.parametrize(
    ("durations", "expected"),
    [((6.0, 6.0), 6), ((6.49, 1.0), 6), ((6.5, 1.0), 7), ((4.0, 0.3), 4)],
)
def test_target_duration_covers_every_rounded_segment(durations, expected) -> None:
    assert target_duration(rendition(durations=durations)) == expected


def test_version_is_the_lowest_the_features_need() -> None:
    text = media_playlist(rendition())
    assert required_version(text, parse_media(text)) == VERSION


def test_master_lists_every_rung_with_codecs_and_bandwidths() -> None:
    renditions = [rendition("64k"), rendition("128k"), rendition("256k")]
    variants = check_master(master_playlist(renditions))
    assert [v["URI"] for v in variants] == [
        "64k/index.m3u8",
        "128k/index.m3u8",
        "256k/index.m3u8",
    ]


def test_peak_bandwidth_ignores_a_tiny_last_segment() -> None:
    # A 0.05 s tail holds a moof header and a few frames: as a segment of its
    # own its bit rate is far above the rung's, which is not a real peak.
    r = rendition(durations=(6.0, 6.0, 0.05))
    r.segments[-1] = Segment(MEDIA_NAME, 0.05, 4000, r.segments[-1].offset)
    assert r.bandwidth < 200_000
    assert r.average_bandwidth <= r.bandwidth


def test_rendition_round_trips_through_the_json_column() -> None:
    for r in (rendition(), rendition_v2()):
        assert Rendition.from_dict(r.as_dict()) == r
    # A row written before packager 3 has no "file" and 3-item segments.
    old = rendition_v2().as_dict()
    del old["file"]
    assert Rendition.from_dict(old) == rendition_v2()
