"""An RFC 8216 checker for the playlists we write, used by the HLS tests."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_ATTRIBUTE = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')


@dataclass
class MediaPlaylist:
    version: int
    target_duration: int
    playlist_type: str | None
    map_uri: str | None
    segments: list[tuple[float, str]] = field(default_factory=list)
    ended: bool = False
    independent: bool = False
    # (length, offset) of the map and of each segment, when given as ranges.
    map_range: tuple[int, int] | None = None
    ranges: list[tuple[int, int] | None] = field(default_factory=list)


def byte_range(value: str, previous_end: int | None) -> tuple[int, int]:
    """`<n>[@<o>]` (RFC 8216 §4.3.2.2); without `@o` it follows the previous
    range of the same resource."""
    length, _, offset = value.partition("@")
    if not offset:
        assert previous_end is not None, "a BYTERANGE without an offset starts"
        return int(length), previous_end
    return int(length), int(offset)


def attributes(text: str) -> dict[str, str]:
    return {k: v.strip('"') for k, v in _ATTRIBUTE.findall(text)}


def parse_media(text: str) -> MediaPlaylist:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    assert lines[0] == "#EXTM3U", "a playlist starts with #EXTM3U"
    playlist = MediaPlaylist(
        version=1, target_duration=-1, playlist_type=None, map_uri=None
    )
    pending: float | None = None
    pending_range: tuple[int, int] | None = None
    previous_end: int | None = None
    for line in lines[1:]:
        if line.startswith("#EXT-X-VERSION:"):
            playlist.version = int(line.split(":", 1)[1])
        elif line.startswith("#EXT-X-TARGETDURATION:"):
            playlist.target_duration = int(line.split(":", 1)[1])
        elif line.startswith("#EXT-X-PLAYLIST-TYPE:"):
            playlist.playlist_type = line.split(":", 1)[1]
        elif line.startswith("#EXT-X-MAP:"):
            attrs = attributes(line.split(":", 1)[1])
            playlist.map_uri = attrs["URI"]
            if "BYTERANGE" in attrs:
                # The map's BYTERANGE must carry its offset (§4.3.2.5).
                assert "@" in attrs["BYTERANGE"], "EXT-X-MAP BYTERANGE needs @offset"
                playlist.map_range = byte_range(attrs["BYTERANGE"], None)
        elif line.startswith("#EXT-X-BYTERANGE:"):
            pending_range = byte_range(line.split(":", 1)[1], previous_end)
            previous_end = sum(pending_range)
        elif line.startswith("#EXTINF:"):
            pending = float(line.split(":", 1)[1].split(",", 1)[0])
        elif line == "#EXT-X-ENDLIST":
            playlist.ended = True
        elif line == "#EXT-X-INDEPENDENT-SEGMENTS":
            playlist.independent = True
        elif not line.startswith("#"):
            assert pending is not None, f"URI {line} without #EXTINF"
            playlist.segments.append((pending, line))
            playlist.ranges.append(pending_range)
            pending = None
            pending_range = None
    return playlist


def required_version(text: str, playlist: MediaPlaylist) -> int:
    """The lowest EXT-X-VERSION the features in `text` need (RFC 8216 §7)."""
    version = 1
    if any(d != int(d) for d, _ in playlist.segments):
        version = max(version, 3)
    if "#EXT-X-BYTERANGE" in text or "#EXT-X-I-FRAMES-ONLY" in text:
        version = max(version, 4)
    if playlist.map_uri is not None and "#EXT-X-I-FRAMES-ONLY" not in text:
        version = max(version, 6)
    return version


def check_media(text: str, *, segment_seconds: int) -> MediaPlaylist:
    """Assert the rules of a VOD fMP4 media playlist; returns it parsed."""
    playlist = parse_media(text)
    assert playlist.version >= required_version(text, playlist)
    assert playlist.playlist_type == "VOD"
    assert playlist.ended, "a VOD playlist ends with #EXT-X-ENDLIST"
    assert playlist.map_uri, "fMP4 segments need #EXT-X-MAP"
    assert playlist.segments
    assert playlist.target_duration >= max(
        int(d + 0.5) for d, _ in playlist.segments
    ), "EXT-X-TARGETDURATION below a rounded segment duration"
    # Every segment but the last is close to the target (AAC frames are
    # 1024 samples, so a cut lands within a frame of it).
    for duration, _ in playlist.segments[:-1]:
        assert abs(duration - segment_seconds) < 0.1, duration
    assert 0 < playlist.segments[-1][0] <= segment_seconds + 0.1
    if playlist.map_range is not None:
        # One file per rendition: the init section at its start, then every
        # segment, each range right after the one before.
        assert {uri for _, uri in playlist.segments} == {playlist.map_uri}
        assert playlist.map_range[1] == 0
        position = playlist.map_range[0]
        for length_offset in playlist.ranges:
            assert length_offset is not None, "a segment of the file without a range"
            length, offset = length_offset
            assert length > 0, length
            assert offset == position, (offset, position)
            position += length
    return playlist


def file_size_covered(playlist: MediaPlaylist) -> int:
    """The bytes the map and segment ranges cover, from 0."""
    assert playlist.map_range is not None
    ends = [sum(r) for r in playlist.ranges if r is not None]
    return max([sum(playlist.map_range), *ends])


def check_master(text: str) -> list[dict[str, str]]:
    """Assert the rules of a master playlist; returns each variant's attributes."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    assert lines[0] == "#EXTM3U"
    assert "#EXT-X-INDEPENDENT-SEGMENTS" in lines
    variants = []
    for index, line in enumerate(lines):
        if line.startswith("#EXT-X-STREAM-INF:"):
            attrs = attributes(line.split(":", 1)[1])
            for name in ("BANDWIDTH", "AVERAGE-BANDWIDTH", "CODECS"):
                assert name in attrs, f"{name} missing"
            assert int(attrs["AVERAGE-BANDWIDTH"]) <= int(attrs["BANDWIDTH"])
            assert attrs["CODECS"] == "mp4a.40.2"
            attrs["URI"] = lines[index + 1]
            assert not attrs["URI"].startswith("#")
            variants.append(attrs)
    assert variants
    return variants
