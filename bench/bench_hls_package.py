"""HLS packaging benchmark: our PyAV ladder packager beside the ffmpeg CLI.

Makes a seeded, music-like 3-minute stereo 44.1 kHz source (chords, a
plucked melody with vibrato, bass, kick and hi-hat, a noise floor; FLAC in a
temporary directory), then times, alternating in one run:

* ours: `streaming.packaging.package_audio` (one decode, one AAC-LC encoder
  thread per rung plus the EBU R128 loudness and true-peak meter) and the
  playlists (`streaming.playlists.media_playlist` / `master_playlist`), as the
  packaging task does before storing;
* **the headline baseline**: the Debian `ffmpeg` CLI producing the same
  ladder in one process (one decode, three AAC encodes, fMP4 HLS, 6 s
  segments), without loudness: the stricter comparison;
* the same CLI also measuring loudness (`asplit` into `ebur128=peak=true`),
  i.e. doing the work ours does.

Prints the median wall time, CPU seconds (user + system), real-time factor
(audio seconds / wall seconds), sizes and segment counts per rung, the ratio
ours / CLI (goal <= 1.1x) and checks the outputs are comparable (segment
counts within 1, sizes within 10 %).

The loudness variant runs in the first --loudness-rounds rounds only (1 by
default), which keeps the whole run under about 3 minutes.

    .venv/bin/python bench/bench_hls_package.py [--seconds 180] [--rounds 3]
        [--loudness-rounds 1 | --no-loudness-cli]
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import harness
import numpy as np

SAMPLE_RATE = 44_100
SEED = 20_261_122
LADDER = [64, 128, 256]
SEGMENT_SECONDS = 6
GOAL_RATIO = 1.1
SIZE_TOLERANCE = 0.10
CLI_TIMEOUT = 600

# --- the source ---------------------------------------------------------------

# A I-V-vi-IV progression in C (MIDI notes), a C major scale for the melody.
_CHORDS = [[60, 64, 67], [55, 59, 62], [57, 60, 64], [53, 57, 60]]
_SCALE = [60, 62, 64, 65, 67, 69, 71, 72, 74, 76]
_BAR_SECONDS = 2.0


def _hz(note: float) -> float:
    return float(440.0 * 2 ** ((note - 69) / 12))


def _harmonic(
    freq: float, t: np.ndarray, n: int, *, vibrato: float = 0.0, rolloff: float = 1.0
) -> np.ndarray:
    """A tone of `n` harmonics (amplitude 1/k**rolloff), optional 5.5 Hz vibrato."""
    phase = np.float32(2 * np.pi * freq) * t
    if vibrato:
        phase += np.float32(freq * vibrato / 5.5) * np.sin(
            np.float32(2 * np.pi * 5.5) * t
        )
    out = np.zeros_like(t)
    for k in range(1, n + 1):
        if freq * k < SAMPLE_RATE / 2.2:
            out += np.sin(k * phase) / k**rolloff
    return out


def _bar(index: int, rng: np.random.Generator) -> np.ndarray:
    """One 2 s bar, (samples, 2) float64 in about [-1, 1]."""
    n = int(_BAR_SECONDS * SAMPLE_RATE)
    # float32: half the work of float64, and plenty for 2 s of local time.
    t = (np.arange(n) / SAMPLE_RATE).astype(np.float32)
    left = np.zeros(n, np.float32)
    right = np.zeros(n, np.float32)
    chord = _CHORDS[index % len(_CHORDS)]

    # Pad: the chord, slightly detuned between channels, slow tremolo,
    # faded in and out so bars join without clicks.
    fade = np.minimum(1.0, np.minimum(t / 0.05, (_BAR_SECONDS - t) / 0.1))
    tremolo = 1 + 0.2 * np.sin(2 * np.pi * 4.0 * t + index)
    for note in chord:
        left += 0.06 * _harmonic(_hz(note - 12), t, 6, rolloff=1.5) * fade * tremolo
        right += (
            0.06 * _harmonic(_hz(note - 12) * 1.003, t, 6, rolloff=1.5) * fade * tremolo
        )

    # Melody: eight plucked notes with vibrato, panned left of centre.
    step = n // 8
    for i in range(8):
        note = _SCALE[int(rng.integers(len(_SCALE)))]
        tn = t[: n - i * step] if i == 7 else t[:step]
        env = np.exp(-tn * 6) * np.minimum(1.0, tn / 0.005)
        tone = 0.22 * _harmonic(_hz(note), tn, 8, vibrato=0.004) * env
        left[i * step : i * step + len(tn)] += 0.65 * tone
        right[i * step : i * step + len(tn)] += 0.35 * tone

    # Bass: the chord's root, two notes per bar, centred.
    half = n // 2
    for i in range(2):
        tn = t[:half]
        env = np.exp(-tn * 2) * np.minimum(1.0, tn / 0.01)
        bass = 0.25 * _harmonic(_hz(chord[0] - 24), tn, 3, rolloff=2.0) * env
        left[i * half : (i + 1) * half] += bass
        right[i * half : (i + 1) * half] += bass

    # Drums: a kick on each beat (a falling sine), a hi-hat on each eighth
    # (differentiated noise, fast decay) panned right.
    beat = n // 4
    for i in range(4):
        tn = t[:beat]
        sweep = 2 * np.pi * (50 * tn + 70 * (1 - np.exp(-tn * 30)) / 30)
        kick = 0.35 * np.sin(sweep) * np.exp(-tn * 12)
        left[i * beat : (i + 1) * beat] += kick
        right[i * beat : (i + 1) * beat] += kick
    for i in range(8):
        tn = t[:step]
        hat = np.diff(rng.normal(0, 1, step + 1)) * np.exp(-tn * 60) * 0.05
        left[i * step : (i + 1) * step] += 0.4 * hat
        right[i * step : (i + 1) * step] += 0.8 * hat

    # A noise floor (room, tape), independent per channel.
    left += rng.normal(0, 0.004, n)
    right += rng.normal(0, 0.004, n)
    return np.stack([left, right], axis=1)


def make_source(path: Path, seconds: int, seed: int = SEED) -> None:
    """Write `seconds` of the seeded music-like signal as 16-bit stereo FLAC."""
    import av

    rng = np.random.default_rng(seed)
    total = seconds * SAMPLE_RATE
    with av.open(str(path), mode="w", format="flac") as container:
        stream = container.add_stream("flac", rate=SAMPLE_RATE, layout="stereo")
        written, index = 0, 0
        while written < total:
            bar = _bar(index, rng)[: total - written]
            index += 1
            pcm = (np.clip(bar * 0.9, -1, 1) * 32767).astype("<i2")
            frame = av.AudioFrame.from_ndarray(
                pcm.reshape(1, -1), format="s16", layout="stereo"
            )
            frame.sample_rate = SAMPLE_RATE
            frame.pts = written
            for packet in stream.encode(frame):
                container.mux(packet)
            written += len(pcm)
        for packet in stream.encode(None):
            container.mux(packet)


# --- the contenders -----------------------------------------------------------


@dataclass
class Rung:
    segments: int
    bytes: int  # init + media segments


@dataclass
class Run:
    wall: float
    cpu: float
    rungs: list[Rung]
    loudness: tuple[float | None, float | None] = (None, None)
    round: int = 0


def _rusage(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def run_ours(source: Path, out: Path) -> Run:
    from streaming.packaging import package_audio
    from streaming.playlists import MASTER_NAME, master_playlist, media_playlist
    from streaming.renditions import PLAYLIST_NAME

    cpu0 = _rusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    output = package_audio(
        source=source, workdir=out, ladder=LADDER, segment_seconds=SEGMENT_SECONDS
    )
    for rendition in output.renditions:
        (out / rendition.name / PLAYLIST_NAME).write_text(media_playlist(rendition))
    (out / MASTER_NAME).write_text(master_playlist(output.renditions))
    wall = time.perf_counter() - started
    cpu = _rusage(resource.RUSAGE_SELF) - cpu0
    rungs = [
        Rung(len(r.segments), r.init_size + sum(s.size for s in r.segments))
        for r in output.renditions
    ]
    return Run(wall, cpu, rungs, (output.loudness_lufs, output.true_peak_dbtp))


def cli_command(source: Path, out: Path, *, loudness: bool) -> list[str]:
    cmd = ["ffmpeg", "-hide_banner", "-nostdin", "-y"]
    # The ebur128 summary is logged at "info"; -nostats keeps the rest quiet.
    cmd += ["-nostats", "-loglevel", "info"] if loudness else ["-loglevel", "error"]
    cmd += ["-i", str(source)]
    if loudness:
        cmd += [
            "-filter_complex",
            "[0:a]asplit=4[a0][a1][a2][m];[m]ebur128=peak=true:framelog=verbose[meter]",
            "-map",
            "[a0]",
            "-map",
            "[a1]",
            "-map",
            "[a2]",
        ]
    else:
        cmd += ["-map", "0:a", "-map", "0:a", "-map", "0:a"]
    cmd += ["-c:a", "aac"]
    for i, kbps in enumerate(LADDER):
        cmd += [f"-b:a:{i}", f"{kbps}k"]
    cmd += [
        "-f",
        "hls",
        "-hls_time",
        str(SEGMENT_SECONDS),
        "-hls_playlist_type",
        "vod",
        "-hls_segment_type",
        "fmp4",
        "-hls_flags",
        "independent_segments",
        "-hls_segment_filename",
        str(out / "%v" / "seg_%05d.m4s"),
        "-master_pl_name",
        "master.m3u8",
        "-var_stream_map",
        " ".join(f"a:{i}" for i in range(len(LADDER))),
        str(out / "%v" / "index.m3u8"),
    ]
    if loudness:
        cmd += ["-map", "[meter]", "-f", "null", "-"]
    return cmd


def _cli_rungs(out: Path) -> list[Rung]:
    rungs = []
    for i in range(len(LADDER)):
        # The rung's directory holds init_<i>.mp4, the segments, the playlist.
        files = [p for p in (out / str(i)).iterdir() if p.suffix != ".m3u8"]
        segments = [p for p in files if p.name.startswith("seg_")]
        rungs.append(Rung(len(segments), sum(p.stat().st_size for p in files)))
    return rungs


def _cli_loudness(log: str) -> tuple[float | None, float | None]:
    summary = log[log.rfind("Summary:") :]
    lufs = re.search(r"I:\s+(-?[\d.]+) LUFS", summary)
    peak = re.search(r"True peak:\s+Peak:\s+(-?[\d.]+) dBFS", summary)
    return (
        float(lufs[1]) if lufs else None,
        float(peak[1]) if peak else None,
    )


def run_cli(source: Path, out: Path, *, loudness: bool) -> Run:
    cmd = cli_command(source, out, loudness=loudness)
    cpu0 = _rusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(
        cmd, capture_output=True, text=True, timeout=CLI_TIMEOUT, check=False
    )
    wall = time.perf_counter() - started
    cpu = _rusage(resource.RUSAGE_CHILDREN) - cpu0
    if result.returncode:
        raise RuntimeError(f"ffmpeg failed ({result.returncode}):\n{result.stderr}")
    measured = _cli_loudness(result.stderr) if loudness else (None, None)
    return Run(wall, cpu, _cli_rungs(out), measured)


# --- the benchmark ------------------------------------------------------------

OURS = "ours: package_audio + playlists (with loudness)"
CLI = "ffmpeg CLI, same ladder (headline baseline)"
CLI_LOUD = "ffmpeg CLI, same ladder + ebur128"


@dataclass
class Contender:
    label: str
    run: Callable[[Path, Path], Run]
    runs: list[Run] = field(default_factory=list)


def run(args: argparse.Namespace) -> dict[str, object]:
    if not shutil.which("ffmpeg"):
        print("SKIPPED bench_hls_package: the ffmpeg CLI is not installed")
        return {"skipped": "ffmpeg missing"}
    import av

    # Imported before timing: the first round should not pay for it.
    import streaming.packaging
    import streaming.playlists  # noqa: F401

    cli_version = subprocess.run(
        ["ffmpeg", "-version"], capture_output=True, text=True, check=True
    ).stdout.split("\n", 1)[0]
    print(f"CLI: {cli_version}")
    print(
        f"PyAV {av.__version__} (libavcodec "
        f"{'.'.join(map(str, av.library_versions['libavcodec']))})"
    )
    contenders = [
        Contender(OURS, run_ours),
        Contender(CLI, lambda s, o: run_cli(s, o, loudness=False)),
    ]
    if not args.no_loudness_cli and args.loudness_rounds > 0:
        contenders.append(
            Contender(CLI_LOUD, lambda s, o: run_cli(s, o, loudness=True))
        )
    with harness.temp_dir("veza-bench-hls-package-") as tmp:
        source = tmp / "source.flac"
        started = time.perf_counter()
        make_source(source, args.seconds)
        print(
            f"Source: {args.seconds} s, 44.1 kHz stereo FLAC, seed {SEED}, "
            f"{source.stat().st_size / 1e6:.1f} MB "
            f"(made in {time.perf_counter() - started:.1f} s)"
        )
        print(
            f"{args.rounds} rounds (the CLI with ebur128: the first "
            f"{min(args.loudness_rounds, args.rounds)}), order rotated each round; "
            "median reported"
        )
        print(harness.load_note())
        for r in range(args.rounds):
            shift = r % len(contenders)
            for contender in contenders[shift:] + contenders[:shift]:
                if contender.label == CLI_LOUD and r >= args.loudness_rounds:
                    continue
                out = tmp / f"out-{r}-{contenders.index(contender)}"
                out.mkdir()
                result = contender.run(source, out)
                result.round = r
                contender.runs.append(result)
                shutil.rmtree(out)
                print(
                    f"  round {r + 1} {contender.label}: {result.wall:.2f} s wall, "
                    f"{result.cpu:.2f} s CPU"
                )
        print(harness.load_note())
    return report(contenders, args)


def report(contenders: list[Contender], args: argparse.Namespace) -> dict[str, object]:
    med = harness.median
    audio = float(args.seconds)
    print()
    print(
        f"Packaging {args.seconds} s into {'/'.join(map(str, LADDER))} kb/s AAC-LC, "
        f"fMP4, {SEGMENT_SECONDS} s segments; median of each one's runs"
    )
    rows = []
    for c in contenders:
        wall = med([r.wall for r in c.runs])
        cpu = med([r.cpu for r in c.runs])
        last = c.runs[-1]
        rows.append(
            [
                c.label,
                str(len(c.runs)),
                f"{wall:.2f}",
                f"{cpu:.2f}",
                f"{audio / wall:.1f}x",
                " / ".join(f"{x.bytes / 1e6:.2f}" for x in last.rungs),
                " / ".join(str(x.segments) for x in last.rungs),
            ]
        )
    harness.print_table(
        [
            "what",
            "runs",
            "wall s",
            "CPU s",
            "real-time",
            "MB per rung (" + "/".join(f"{k}k" for k in LADDER) + ")",
            "segments",
        ],
        rows,
    )
    ours = contenders[0]
    ours_wall = med([r.wall for r in ours.runs])
    summary: dict[str, object] = {
        "audio_seconds": audio,
        "rounds": args.rounds,
        "results": {
            c.label: {
                "wall_s": round(med([r.wall for r in c.runs]), 3),
                "cpu_s": round(med([r.cpu for r in c.runs]), 3),
                "realtime_factor": round(audio / med([r.wall for r in c.runs]), 1),
                "rung_bytes": [x.bytes for x in c.runs[-1].rungs],
                "rung_segments": [x.segments for x in c.runs[-1].rungs],
                "loudness_lufs": c.runs[-1].loudness[0],
                "true_peak_dbtp": c.runs[-1].loudness[1],
            }
            for c in contenders
        },
    }
    lufs, peak = ours.runs[-1].loudness
    print(f"Loudness, ours: {lufs} LUFS integrated, true peak {peak} dBTP")
    for c in contenders[1:]:
        if c.runs[-1].loudness[0] is not None:
            lufs, peak = c.runs[-1].loudness
            print(f"Loudness, {c.label}: {lufs} LUFS, true peak {peak} dBFS")
    comparable = True
    for c in contenders[1:]:
        wall = med([r.wall for r in c.runs])
        ratio = ours_wall / wall
        ours_by_round = {o.round: o for o in ours.runs}
        per_round = [ours_by_round[t.round].wall / t.wall for t in c.runs]
        headline = c.label == CLI
        if headline:
            verdict = "OK" if ratio <= GOAL_RATIO else "MISSED"
            goal = f"goal <= {GOAL_RATIO}x: {verdict}"
        else:
            goal = "same work as ours; for information"
        cpu_ratio = med([r.cpu for r in ours.runs]) / med([r.cpu for r in c.runs])
        print(f"Ratio ours / {c.label}: {ratio:.3f}x wall ({goal})")
        print(
            f"  per round {', '.join(f'{x:.2f}' for x in per_round)} "
            f"(median {med(per_round):.3f}x); CPU ours / theirs {cpu_ratio:.2f}x"
        )
        key = "ratio_vs_cli" if headline else "ratio_vs_cli_with_loudness"
        summary[key] = round(ratio, 3)
        for i, (a, b) in enumerate(
            zip(ours.runs[-1].rungs, c.runs[-1].rungs, strict=True)
        ):
            if abs(a.segments - b.segments) > 1 or abs(a.bytes - b.bytes) > (
                SIZE_TOLERANCE * b.bytes
            ):
                comparable = False
                print(
                    f"  NOT COMPARABLE, rung {LADDER[i]}k: ours {a.segments} segments "
                    f"{a.bytes} B, {c.label} {b.segments} segments {b.bytes} B"
                )
    print(
        "Outputs comparable (segments within 1, sizes within "
        f"{SIZE_TOLERANCE:.0%}): {'yes' if comparable else 'NO'}"
    )
    summary["comparable"] = comparable
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=int, default=180, help="source length")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--loudness-rounds",
        type=int,
        default=1,
        help="rounds that also run the CLI with ebur128 (the first ones)",
    )
    parser.add_argument(
        "--no-loudness-cli",
        action="store_true",
        help="skip the CLI variant that also measures loudness",
    )
    args = parser.parse_args()
    summary = run(args)
    harness.OUT.mkdir(parents=True, exist_ok=True)
    (harness.OUT / "bench_hls_package.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
