"""Make real audio files with PyAV for the tests."""

from __future__ import annotations

import math
import wave
from fractions import Fraction
from pathlib import Path
from typing import Any, cast

import av
import numpy as np

CODECS = {
    # container format -> (codec, sample format, file suffix)
    "wav": ("pcm_s16le", "s16", "wav"),
    "flac": ("flac", "s16", "flac"),
    "mp3": ("libmp3lame", "s16p", "mp3"),
    "ipod": ("aac", "fltp", "m4a"),
    "ogg": ("libopus", "flt", "ogg"),
}


def make_audio(
    path: Path, *, fmt: str = "wav", seconds: float = 3.0, rate: int = 48000
) -> Path:
    """A stereo 440/660 Hz tone of `seconds`, encoded as `fmt`."""
    codec, sample_format, _ = CODECS[fmt]
    with av.open(str(path), mode="w", format=fmt) as out:
        stream = cast(av.AudioStream, out.add_stream(codec, rate=rate))
        stream.layout = "stereo"
        if codec in ("libmp3lame", "aac", "libopus"):
            stream.bit_rate = 128_000
        frame_size = stream.codec_context.frame_size or 1024
        total = int(seconds * rate)
        t = np.arange(total) / rate
        left = 0.3 * np.sin(2 * math.pi * 440 * t)
        right = 0.3 * np.sin(2 * math.pi * 660 * t)
        pts = 0
        for start in range(0, total, frame_size):
            chunk = np.stack(
                [left[start : start + frame_size], right[start : start + frame_size]]
            )
            data: Any
            if sample_format == "s16":
                data = (chunk.T * 32767).astype(np.int16).reshape(1, -1)
            elif sample_format == "s16p":
                data = (chunk * 32767).astype(np.int16)
            elif sample_format == "flt":
                data = chunk.T.astype(np.float32).reshape(1, -1)
            else:
                data = chunk.astype(np.float32)
            frame = av.AudioFrame.from_ndarray(
                data, format=sample_format, layout="stereo"
            )
            frame.sample_rate = rate
            frame.pts = pts
            frame.time_base = Fraction(1, rate)
            pts += frame.samples
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def suffix(fmt: str) -> str:
    return CODECS[fmt][2]


def write_wav(path: Path, signal: np.ndarray, *, rate: int) -> Path:
    """A 16-bit stereo WAV of `signal` (floats in -1..1), the same on both sides."""
    pcm = (np.clip(signal, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(np.repeat(pcm, 2).tobytes())
    return path


def make_song(path: Path, *, seconds: int, rate: int = 44100) -> Path:
    """A WAV with a shape to draw and to seek through: beats that decay, a
    swell, a quiet bridge, rather than a constant tone."""
    t = np.arange(seconds * rate) / rate
    beat = np.exp(-6 * np.mod(t, 0.5))
    swell = 0.35 + 0.3 * np.sin(2 * math.pi * t / seconds) ** 2
    bridge = np.where((t > seconds * 0.55) & (t < seconds * 0.7), 0.35, 1.0)
    tone = np.sin(2 * math.pi * 220 * t) + 0.5 * np.sin(2 * math.pi * 330 * t)
    signal = 0.6 * tone * (0.3 + 0.7 * beat) * swell * bridge
    return write_wav(path, signal, rate=rate)
