"""Write HLS media and master playlists (RFC 8216) for a packaged ladder."""

from __future__ import annotations

from collections.abc import Sequence

from streaming.renditions import INIT_NAME, PLAYLIST_NAME, Rendition

MASTER_NAME = "master.m3u8"
# EXT-X-MAP in a media playlist that is not I-frames-only needs version 6
# (RFC 8216 §7), EXT-X-BYTERANGE and BYTERANGE on the map 4; nothing else we
# write needs more.
VERSION = 6


def target_duration(rendition: Rendition) -> int:
    """EXT-X-TARGETDURATION: every EXTINF, rounded, must fit (RFC 8216 §4.3.3.1)."""
    return max(int(s.duration + 0.5) for s in rendition.segments)


def media_playlist(rendition: Rendition) -> str:
    lines = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{VERSION}",
        f"#EXT-X-TARGETDURATION:{target_duration(rendition)}",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-PLAYLIST-TYPE:VOD",
        "#EXT-X-INDEPENDENT-SEGMENTS",
    ]
    if rendition.file:
        # One file: the init section at its start, each fragment a range.
        lines.append(
            f'#EXT-X-MAP:URI="{rendition.file}",BYTERANGE="{rendition.init_size}@0"'
        )
    else:
        lines.append(f'#EXT-X-MAP:URI="{INIT_NAME}"')
    for segment in rendition.segments:
        lines.append(f"#EXTINF:{segment.duration:.6f},")
        if segment.offset is not None:
            # Always with the offset, so no line depends on the one before.
            lines.append(f"#EXT-X-BYTERANGE:{segment.size}@{segment.offset}")
        lines.append(segment.name)
    lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def master_playlist(renditions: Sequence[Rendition]) -> str:
    lines = ["#EXTM3U", f"#EXT-X-VERSION:{VERSION}", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for rendition in renditions:
        lines.append(
            f"#EXT-X-STREAM-INF:BANDWIDTH={rendition.bandwidth},"
            f"AVERAGE-BANDWIDTH={rendition.average_bandwidth},"
            f'CODECS="{rendition.codecs}"'
        )
        lines.append(f"{rendition.name}/{PLAYLIST_NAME}")
    return "\n".join(lines) + "\n"
