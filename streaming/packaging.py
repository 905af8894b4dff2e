"""Transcode one audio file into an AAC-LC ladder of fMP4 HLS segments (PyAV)."""

from __future__ import annotations

import math
import queue
import re
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import av
import av.filter

from streaming.renditions import (
    MEDIA_NAME,
    PLAYLIST_NAME,
    PackageOutput,
    PackagingError,
    Rendition,
    Segment,
)
from streaming.waveform import Peaks

# Sample rates AAC-LC carries; anything else is resampled to 48 kHz.
_AAC_RATES = {8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000}
# Frames queued per encoder thread: enough to keep both cores busy.
_QUEUE_FRAMES = 256
# What FFmpeg's muxer writes with single_file: each segment's duration and
# byte range, and the init section's range in the map.
_SEGMENT = re.compile(
    r"#EXTINF:([0-9.]+),\s*\n#EXT-X-BYTERANGE:([0-9]+)@([0-9]+)\s*\n([^\n#]+)"
)
_MAP = re.compile(r'#EXT-X-MAP:URI="([^"]+)",BYTERANGE="([0-9]+)@0"')


def rung_name(kbps: int) -> str:
    return f"{kbps}k"


def package_audio(
    *,
    source: Path,
    workdir: Path,
    ladder: Sequence[int],
    segment_seconds: int,
    max_seconds: float = float("inf"),
) -> PackageOutput:
    """Decode `source` once and write every rung of `ladder` (kb/s) to `workdir`.

    Each rung goes to `workdir/<kbps>k/` as one fMP4 file, `media.mp4`: the
    init section, then every fragment (a segment), whose byte ranges the
    rendition lists. Each encoder runs in its own thread (PyAV releases the
    GIL while encoding), so the ladder uses every core. Playlists are not
    written here (see playlists.py). Raises PackagingError, `timeout` once
    `max_seconds` of wall-clock time have gone (a worker is not held by one
    file for ever, whatever it declares).
    """
    started = time.perf_counter()
    try:
        container = av.open(str(source))
    except (av.error.FFmpegError, OSError) as exc:
        raise PackagingError("unreadable_source", str(exc)) from exc
    with container:
        if not container.streams.audio:
            raise PackagingError("no_audio", "The source has no audio stream.")
        stream = container.streams.audio[0]
        rate = stream.rate if stream.rate in _AAC_RATES else 48000
        channels = 1 if stream.channels == 1 else 2
        layout = "mono" if channels == 1 else "stereo"
        # The encoders regroup frames into AAC's 1024 samples themselves, in
        # their own threads.
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
        encoders = [
            _RungEncoder(
                workdir / rung_name(kbps),
                bitrate=kbps * 1000,
                rate=rate,
                layout=layout,
                segment_seconds=segment_seconds,
            )
            for kbps in ladder
        ]
        loudness = _Loudness()
        peaks = _Peaks()
        workers: list[_Worker] = [*encoders, loudness, peaks]
        samples = 0
        try:
            for worker in workers:
                worker.start()
            try:
                for frame in container.decode(stream):
                    if time.perf_counter() - started > max_seconds:
                        raise PackagingError(
                            "timeout", f"Packaging took over {max_seconds:g} s."
                        )
                    for out in resampler.resample(frame):
                        samples += out.samples
                        for worker in workers:
                            worker.put(out)
                for out in resampler.resample(None):
                    samples += out.samples
                    for worker in workers:
                        worker.put(out)
            except av.error.FFmpegError as exc:
                raise PackagingError("decode_failed", str(exc)) from exc
        finally:
            for worker in workers:
                worker.finish()
        for worker in workers:
            if worker.error is not None:
                raise PackagingError("encode_failed", str(worker.error))
    if samples == 0:
        raise PackagingError("no_audio", "The source decodes to no audio.")
    lufs, peak = loudness.result()
    return PackageOutput(
        renditions=[e.rendition() for e in encoders],
        duration=samples / rate,
        sample_rate=rate,
        channels=channels,
        loudness_lufs=lufs,
        true_peak_dbtp=peak,
        encode_seconds=time.perf_counter() - started,
        waveform=peaks.peaks.waveform(sample_rate=rate),
    )


class _Worker:
    """A thread fed the decoded frames in order; None marks the end."""

    def __init__(self) -> None:
        self.queue: queue.Queue[av.AudioFrame | None] = queue.Queue(_QUEUE_FRAMES)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    def start(self) -> None:
        self.thread.start()

    def put(self, frame: av.AudioFrame) -> None:
        if self.error is None:
            self.queue.put(frame)

    def finish(self) -> None:
        if self.thread.is_alive():
            self.queue.put(None)
            self.thread.join()
        self.close()

    def handle(self, frame: av.AudioFrame | None) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def _run(self) -> None:
        try:
            while True:
                frame = self.queue.get()
                self.handle(frame)
                if frame is None:
                    return
        except BaseException as exc:
            self.error = exc
            # Drain so the decode loop never blocks on a dead consumer.
            while self.queue.get() is not None:
                pass


class _RungEncoder(_Worker):
    """One AAC encoder and fMP4 segmenter, writing one file per rung."""

    def __init__(
        self,
        directory: Path,
        *,
        bitrate: int,
        rate: int,
        layout: str,
        segment_seconds: int,
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.bitrate = bitrate
        # FFmpeg's own HLS muxer cuts the fMP4 fragments into one file
        # (single_file); its playlist is read back for the exact durations
        # and byte ranges, and replaced by ours.
        self.output = av.open(
            str(directory / PLAYLIST_NAME),
            mode="w",
            format="hls",
            options={
                "hls_time": str(segment_seconds),
                "hls_playlist_type": "vod",
                "hls_segment_type": "fmp4",
                "hls_segment_filename": str(directory / MEDIA_NAME),
                "hls_flags": "independent_segments+single_file",
            },
        )
        self.stream = self.output.add_stream("aac", rate=rate)
        self.stream.layout = layout
        self.stream.bit_rate = bitrate
        super().__init__()

    def handle(self, frame: av.AudioFrame | None) -> None:
        for packet in self.stream.encode(frame):
            self.output.mux(packet)

    def close(self) -> None:
        self.output.close()

    def rendition(self) -> Rendition:
        text = (self.directory / PLAYLIST_NAME).read_text()
        (self.directory / PLAYLIST_NAME).unlink()
        segments = [
            Segment(MEDIA_NAME, float(duration), int(size), int(offset))
            for duration, size, offset, name in _SEGMENT.findall(text)
            if name.strip() == MEDIA_NAME
        ]
        init = _MAP.search(text)
        if not segments or init is None or init[1] != MEDIA_NAME:
            raise PackagingError("encode_failed", "The encoder wrote no segments.")
        # The ranges must tile the file: init section, then each fragment.
        size = (self.directory / MEDIA_NAME).stat().st_size
        position = int(init[2])
        for segment in segments:
            if segment.offset != position:
                raise PackagingError(
                    "encode_failed", "The fragments are not contiguous."
                )
            position += segment.size
        if position != size:
            raise PackagingError("encode_failed", "The fragments do not fill the file.")
        return Rendition(
            name=self.directory.name,
            bitrate=self.bitrate,
            init_size=int(init[2]),
            segments=segments,
            file=MEDIA_NAME,
        )


class _Peaks(_Worker):
    """Waveform peaks of the decoded audio (streaming/waveform.py)."""

    def __init__(self) -> None:
        self.peaks = Peaks()
        super().__init__()

    def handle(self, frame: av.AudioFrame | None) -> None:
        if frame is not None:
            self.peaks.add(frame.to_ndarray())


class _Loudness(_Worker):
    """EBU R128 integrated loudness and true peak, via FFmpeg's ebur128 filter."""

    def __init__(self) -> None:
        self.graph: av.filter.Graph | None = None
        self.metadata: dict[str, str] = {}
        super().__init__()

    def handle(self, frame: av.AudioFrame | None) -> None:
        if frame is None:
            if self.graph is not None:
                self.graph.push(None)
                self._drain()
            return
        if self.graph is None:
            self.graph = av.filter.Graph()
            source = self.graph.add_abuffer(
                format=frame.format.name,
                sample_rate=frame.sample_rate,
                layout=frame.layout.name,
                time_base=frame.time_base,
            )
            meter = self.graph.add("ebur128", "metadata=1:peak=true")
            sink = self.graph.add("abuffersink")
            source.link_to(meter)
            meter.link_to(sink)
            self.graph.configure()
        self.graph.push(frame)
        self._drain()

    def _drain(self) -> None:
        if self.graph is None:
            return
        while True:
            try:
                out = self.graph.pull()
            except (av.error.BlockingIOError, av.error.EOFError):
                return
            metadata = cast(Any, out).metadata
            if metadata:
                self.metadata = dict(metadata)

    def result(self) -> tuple[float | None, float | None]:
        lufs = _float(self.metadata.get("lavfi.r128.I"))
        peak = _float(self.metadata.get("lavfi.r128.true_peak"))
        peak_db = round(20 * math.log10(peak), 2) if peak else None
        if lufs is not None and not math.isfinite(lufs):
            lufs = None  # silence: gated away entirely
        return lufs, peak_db


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
