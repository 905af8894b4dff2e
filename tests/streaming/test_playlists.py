"""Playlist writing: the pure functions, checked against RFC 8216's rules."""

from __future__ import annotations

import pytest

from streaming.playlists import (
    VERSION,
    master_playlist,
    media_playlist,
    target_duration,
)
from streaming.renditions import Rendition, Segment
from tests.streaming.conformance import (
    check_master,
    check_media,
    parse_media,
    required_version,
)


def rendition(name: str = "128k", durations=(6.013968, 5.990748, 2.1)) -> Rendition:
    return Rendition(
        name=name,
        bitrate=128_000,
        init_size=765,
        segments=[
            Segment(f"seg_{i:05d}.m4s", d, int(d * 16_000) + 500)
            for i, d in enumerate(durations, start=1)
        ],
    )


def test_media_playlist_is_a_conformant_vod_fmp4_playlist() -> None:
    text = media_playlist(rendition())
    playlist = check_media(text, segment_seconds=6)
    assert playlist.version == VERSION == 6
    assert playlist.target_duration == 6
    assert playlist.map_uri == "init.mp4"
    assert [uri for _, uri in playlist.segments] == [
        "seg_00001.m4s",
        "seg_00002.m4s",
        "seg_00003.m4s",
    ]
    assert text.endswith("#EXT-X-ENDLIST\n")


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
    r.segments[-1] = Segment("seg_00003.m4s", 0.05, 4000)
    assert r.bandwidth < 200_000
    assert r.average_bandwidth <= r.bandwidth


def test_rendition_round_trips_through_the_json_column() -> None:
    r = rendition()
    assert Rendition.from_dict(r.as_dict()) == r
