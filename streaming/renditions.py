"""What a package holds: its renditions, their segments, the files' names.

Apart from the packager (`streaming.packaging`, which loads PyAV), so the
playlists, the services and the origin use them without loading FFmpeg.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

INIT_NAME = "init.mp4"
PLAYLIST_NAME = "index.m3u8"
# The one fMP4 file of a rung (packager 3 on): its init section, then every
# fragment, each addressed by a byte range of its media playlist.
MEDIA_NAME = "media.mp4"


class PackagingError(Exception):
    """The source cannot be packaged; `code` is stable, `message` says why."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")


@dataclass(frozen=True)
class Segment:
    """One segment: a file of its own, or (`offset` set) a byte range of the
    rung's single file."""

    name: str
    duration: float
    size: int
    offset: int | None = None


@dataclass
class Rendition:
    name: str
    bitrate: int
    init_size: int = 0
    segments: list[Segment] = field(default_factory=list)
    codecs: str = "mp4a.40.2"
    # The single file every segment is a range of ("" for packages made
    # before packager 3: init.mp4 and one file per segment).
    file: str = ""

    @property
    def files(self) -> list[str]:
        """The rung's media files, relative to its directory, init first."""
        if self.file:
            return [self.file]
        return [INIT_NAME, *(s.name for s in self.segments)]

    @property
    def duration(self) -> float:
        return sum(s.duration for s in self.segments)

    @property
    def bandwidth(self) -> int:
        """Peak segment bit rate (RFC 8216 §4.3.4.2), in bits per second.

        Measured, as Apple's validator does, over runs of consecutive segments
        lasting at least half the longest segment, so a short last segment
        (a few frames and a header) does not pass for the peak.
        """
        longest = max((s.duration for s in self.segments), default=0.0)
        peak = 0
        for start in range(len(self.segments)):
            size, seconds = 0, 0.0
            for segment in self.segments[start:]:
                size += segment.size
                seconds += segment.duration
                if seconds >= longest / 2:
                    break
            if seconds >= longest / 2 and seconds > 0:
                peak = max(peak, math.ceil(size * 8 / seconds))
        # The average is a floor: a peak is never below it.
        return max(peak, self.average_bandwidth)

    @property
    def average_bandwidth(self) -> int:
        seconds = self.duration
        if not seconds:
            return self.bitrate
        return math.ceil(sum(s.size for s in self.segments) * 8 / seconds)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "bitrate": self.bitrate,
            "bandwidth": self.bandwidth,
            "average_bandwidth": self.average_bandwidth,
            "codecs": self.codecs,
            "init_size": self.init_size,
            "file": self.file,
            "segments": [
                [s.name, s.duration, s.size] + ([] if s.offset is None else [s.offset])
                for s in self.segments
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Rendition:
        return cls(
            name=data["name"],
            bitrate=data["bitrate"],
            init_size=data.get("init_size", 0),
            codecs=data.get("codecs", "mp4a.40.2"),
            file=data.get("file", ""),
            segments=[
                Segment(n, float(d), int(s), int(rest[0]) if rest else None)
                for n, d, s, *rest in data["segments"]
            ],
        )


@dataclass
class PackageOutput:
    renditions: list[Rendition]
    duration: float
    sample_rate: int
    channels: int
    loudness_lufs: float | None
    true_peak_dbtp: float | None
    encode_seconds: float
    # The audiowaveform JSON (streaming/waveform.py), stored as waveform.json.
    waveform: dict[str, Any] = field(default_factory=dict)
