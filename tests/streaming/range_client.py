"""A second HLS client, independent of FFmpeg's demuxer: playlists parsed by
the `m3u8` package, the init section and every segment fetched by its byte
range with `requests`, the audio decoded by PyAV from the bytes received."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from urllib.parse import urljoin

import av
import m3u8
import requests


@dataclass
class Played:
    """What one rung gave: seconds decoded, and every request made for it."""

    uri: str
    seconds: float
    # (url, Range header sent, status, bytes received)
    fetches: list[tuple[str, str, int, int]] = field(default_factory=list)


def _range(byterange: str) -> tuple[int, int]:
    length, _, offset = byterange.partition("@")
    assert offset, f"a byte range without its offset: {byterange}"
    return int(offset), int(offset) + int(length) - 1


def _fetch(
    session: requests.Session, url: str, byterange: str | None, played: Played
) -> bytes:
    if byterange is None:
        response = session.get(url, timeout=20)
        assert response.status_code == 200, (url, response.status_code)
        played.fetches.append((url, "", 200, len(response.content)))
        return response.content
    first, last = _range(byterange)
    header = f"bytes={first}-{last}"
    response = session.get(url, headers={"Range": header}, timeout=20)
    assert response.status_code == 206, (url, header, response.status_code)
    content_range = response.headers["Content-Range"]
    assert content_range.startswith(f"bytes {first}-{last}/"), content_range
    assert len(response.content) == last - first + 1, (url, header)
    played.fetches.append((url, header, 206, len(response.content)))
    return response.content


def play_rung(session: requests.Session, media_url: str) -> Played:
    response = session.get(media_url, timeout=20)
    assert response.status_code == 200, (media_url, response.status_code)
    playlist = m3u8.loads(response.text, uri=media_url)
    assert playlist.is_endlist
    assert playlist.playlist_type == "vod"
    played = Played(uri=media_url, seconds=0.0)
    [init] = playlist.segment_map
    data = bytearray(
        _fetch(session, urljoin(media_url, init.uri), init.byterange, played)
    )
    for segment in playlist.segments:
        data += _fetch(
            session, urljoin(media_url, segment.uri), segment.byterange, played
        )
    with av.open(io.BytesIO(bytes(data))) as container:
        for frame in container.decode(audio=0):
            played.seconds += frame.samples / frame.sample_rate
    return played


def play_every_rung(
    master_url: str, *, session: requests.Session | None = None
) -> list[Played]:
    """Play each variant of the master at `master_url` from start to end."""
    session = session or requests.Session()
    response = session.get(master_url, timeout=20)
    assert response.status_code == 200, (master_url, response.status_code)
    master = m3u8.loads(response.text, uri=master_url)
    assert master.is_variant
    assert master.playlists
    return [
        play_rung(session, urljoin(master_url, variant.uri))
        for variant in master.playlists
    ]
