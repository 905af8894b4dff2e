"""Probe an uploaded file with PyAV: is it decodable audio, and how long."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import av

from tracks import errors
from tracks.media_types import FORMATS, AudioFormat

logger = logging.getLogger(__name__)

# Decoding this much proves the codec works without decoding a whole album.
DECODE_CHECK_SECONDS = 2.0
# Audio that stops this far short of what the container declares is truncated.
TRUNCATION_TOLERANCE = 0.02
# Formats FFmpeg finds by scanning for frames, skipping whatever comes first:
# a page or a document with an MP3 after it would pass as audio. The file
# must start with an ID3 tag or a frame header.
FRAME_SCANNED_FORMATS = {"mp3", "aac"}


@dataclass(frozen=True)
class ProbeResult:
    format: AudioFormat
    codec: str
    duration_seconds: float
    sample_rate: int
    channels: int


def probe_audio(path: Path, *, max_seconds: float) -> ProbeResult:
    """Demux the whole file and decode its start; raise a 415 error if not audio.

    Audio longer than `max_seconds`, declared or found, is refused (422): a
    small file can declare or hold hours (a silent FLAC, a low-rate Opus),
    and every second costs packaging work and storage.
    """
    if path.stat().st_size == 0:
        raise errors.EmptyUpload()
    try:
        container = av.open(str(path), mode="r")
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        # FFmpeg's message names the staging file and an errno: logged, and
        # the client gets a stable fact instead.
        logger.info("not audio: %s", exc)
        raise errors.NotAudio(details={"reason": "unrecognized_format"}) from exc
    with container:
        audio_format = FORMATS.get(container.format.name)
        if audio_format is None or not container.streams.audio:
            raise errors.NotAudio(details={"format": container.format.name})
        if container.format.name in FRAME_SCANNED_FORMATS and not _starts_with_audio(
            path
        ):
            raise errors.NotAudio(details={"reason": "data_before_audio"})
        stream = container.streams.audio[0]
        declared = _declared_duration(container, stream)
        if container.format.name == "wav":
            declared = max(declared, _wav_declared_seconds(path, stream))
        if declared > max_seconds:
            raise _too_long(declared, max_seconds)
        decoded, demuxed = _read(container, stream, max_seconds=max_seconds)
        if decoded <= 0:
            raise errors.Undecodable()
        duration = demuxed if demuxed > 0 else declared
        if duration <= 0:
            raise errors.NoDuration()
        if duration > max_seconds:
            raise _too_long(duration, max_seconds)
        if declared > 1 and demuxed < declared * (1 - TRUNCATION_TOLERANCE) - 0.5:
            raise errors.TruncatedAudio(
                details={
                    "declared_seconds": round(declared, 3),
                    "found_seconds": round(demuxed, 3),
                }
            )
        return ProbeResult(
            format=audio_format,
            codec=stream.codec_context.name,
            duration_seconds=round(duration, 3),
            sample_rate=stream.codec_context.sample_rate or 0,
            channels=stream.codec_context.channels or 0,
        )


def _starts_with_audio(path: Path) -> bool:
    """An ID3v2 tag or an MPEG audio / ADTS frame sync at byte 0."""
    with path.open("rb") as f:
        head = f.read(3)
    return head == b"ID3" or (
        len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0
    )


def _too_long(seconds: float, max_seconds: float) -> errors.TooLong:
    return errors.TooLong(
        details={"duration_seconds": round(seconds, 3), "max_seconds": max_seconds}
    )


def _declared_duration(
    container: av.container.InputContainer, stream: av.AudioStream
) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return 0.0


def _wav_declared_seconds(path: Path, stream: av.AudioStream) -> float:
    """What a WAV header's data chunk size promises.

    FFmpeg sizes a WAV by the file, so a cut file looks whole to it.
    """
    with path.open("rb") as f:
        head = f.read(64 * 1024)
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return 0.0
    offset = 12
    while offset + 8 <= len(head):
        chunk_id = head[offset : offset + 4]
        chunk_size = int.from_bytes(head[offset + 4 : offset + 8], "little")
        if chunk_id == b"data":
            if chunk_size in (0, 0xFFFFFFFF):
                return 0.0  # streamed WAV: the size was never filled in
            byte_rate = (stream.codec_context.bit_rate or 0) / 8
            return chunk_size / byte_rate if byte_rate else 0.0
        offset += 8 + chunk_size + (chunk_size & 1)
    return 0.0


def _read(
    container: av.container.InputContainer,
    stream: av.AudioStream,
    *,
    max_seconds: float,
) -> tuple[float, float]:
    """Seconds decoded at the start, and seconds of packets in the whole file
    (demuxing stops once they pass `max_seconds`)."""
    decoded = 0.0
    demuxed = 0.0
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            if packet.duration and packet.time_base is not None:
                demuxed += float(packet.duration * packet.time_base)
                if demuxed > max_seconds:
                    break
            if decoded < DECODE_CHECK_SECONDS:
                for frame in packet.decode():
                    if frame.sample_rate:
                        decoded += frame.samples / frame.sample_rate
    except av.error.FFmpegError as exc:
        if decoded <= 0:
            logger.info("undecodable: %s", exc)
            raise errors.Undecodable(details={"reason": "decoding_failed"}) from exc
        # A damaged tail: what demuxed so far decides whether it is truncated.
        logger.info("demux stopped early: %s", exc)
    return decoded, demuxed
