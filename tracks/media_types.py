"""Audio formats we accept, by FFmpeg demuxer, with their MIME types.

An explicit table, never Python's `mimetypes`: its answers depend on the
host's /etc/mime.types.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AudioFormat:
    mime_type: str
    extension: str


# FFmpeg demuxer name -> what we store and serve.
FORMATS: dict[str, AudioFormat] = {
    "wav": AudioFormat("audio/wav", "wav"),
    "mp3": AudioFormat("audio/mpeg", "mp3"),
    "flac": AudioFormat("audio/flac", "flac"),
    "ogg": AudioFormat("audio/ogg", "ogg"),
    "mov,mp4,m4a,3gp,3g2,mj2": AudioFormat("audio/mp4", "m4a"),
    "aiff": AudioFormat("audio/aiff", "aiff"),
    "aac": AudioFormat("audio/aac", "aac"),
    "matroska,webm": AudioFormat("audio/webm", "webm"),
}

# Extension of a stored object -> Content-Type served for it.
CONTENT_TYPES: dict[str, str] = {f.extension: f.mime_type for f in FORMATS.values()}
