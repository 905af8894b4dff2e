"""Content types of HLS files: an explicit table (Apple HLS authoring spec §10.4).

Never Python's `mimetypes`: it has no .m4s, and Debian maps .ts to a
Qt translation file.
"""

from __future__ import annotations

HLS_CONTENT_TYPES: dict[str, str] = {
    "m3u8": "application/vnd.apple.mpegurl",
    "m4s": "video/iso.segment",
    "mp4": "audio/mp4",  # the fMP4 init segment of an audio rendition
    "ts": "video/mp2t",
    "aac": "audio/aac",
    "vtt": "text/vtt",
    "json": "application/json",  # waveform.json, the peaks of the package
}


def hls_content_type(name: str) -> str:
    extension = name.rpartition(".")[2].lower()
    return HLS_CONTENT_TYPES.get(extension, "application/octet-stream")


def is_playlist(name: str) -> bool:
    return name.endswith(".m3u8")
