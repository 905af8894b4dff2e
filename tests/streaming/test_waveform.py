"""Waveform peaks: the audiowaveform JSON of signals of known shape, made in
the packaging pass and answered by GET /api/v1/tracks/{id}/waveform."""

from __future__ import annotations

import gzip
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest

from streaming.models import PackageStatus
from streaming.services import hls_package_build, hls_package_request
from streaming.waveform import BLOCK, MAX_POINTS, WAVEFORM_NAME, Peaks
from tests.audio import write_wav
from tests.tracks.helpers import assert_error, create_track
from tracks.models import Track

RATE = 48000


def tone(seconds: float, amplitude: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (amplitude * np.sin(2 * math.pi * 441 * t)).astype(np.float32)


def waveform_of(*chunks: np.ndarray) -> dict:
    peaks = Peaks()
    for chunk in chunks:
        peaks.add(np.stack([chunk, chunk]))
    return peaks.waveform(sample_rate=RATE)


def pairs(waveform: dict) -> list[tuple[int, int]]:
    data = waveform["data"]
    return list(zip(data[0::2], data[1::2], strict=True))


# --- the peaks, pure ---------------------------------------------------------


def test_silence_then_a_full_scale_tone():
    waveform = waveform_of(np.zeros(3 * RATE, np.float32), tone(3))
    assert {k: waveform[k] for k in ("version", "channels", "bits")} == {
        "version": 2,
        "channels": 1,
        "bits": 8,
    }
    points = pairs(waveform)
    assert len(points) == waveform["length"] <= MAX_POINTS
    half = len(points) // 2
    # The pixel astride the change is either; the rest follow the signal.
    assert all(p == (0, 0) for p in points[: half - 1])
    assert all(low <= -126 and high >= 126 for low, high in points[half + 1 :])


def test_a_ramp_rises_with_the_signal():
    ramp = tone(10) * np.linspace(0, 1, 10 * RATE, dtype=np.float32)
    highs = [high for _, high in pairs(waveform_of(ramp))]
    assert highs[0] <= 2
    assert highs[-1] >= 125
    # Rising, to the rounding of one step.
    assert all(b >= a - 1 for a, b in itertools.pairwise(highs))
    assert np.corrcoef(highs, np.linspace(0, 127, len(highs)))[0, 1] > 0.99


def test_any_duration_fits_the_points_and_covers_every_sample():
    for seconds in (0.5, 3, 600):
        samples = int(seconds * RATE)
        waveform = waveform_of(np.zeros(samples, np.float32))
        length, per_pixel = waveform["length"], waveform["samples_per_pixel"]
        assert length <= MAX_POINTS
        assert per_pixel % BLOCK == 0
        assert (length - 1) * per_pixel < samples <= length * per_pixel
    # A 10-minute track: about a thousand to two thousand points.
    assert 1000 <= waveform["length"] <= MAX_POINTS


def test_ten_minutes_of_noise_fit_in_20_kb_gzipped():
    # Noise under a random loudness every 0.1 s: every point of the
    # waveform different from the last, the least compressible there is.
    rng = np.random.default_rng(7)
    envelope = np.repeat(rng.uniform(0, 1, 6000), 800)
    noise = (rng.uniform(-1, 1, 600 * 8000) * envelope).astype(np.float32)
    peaks = Peaks()
    peaks.add(noise[np.newaxis, :])
    body = json.dumps(peaks.waveform(sample_rate=8000), separators=(",", ":"))
    assert len(gzip.compress(body.encode())) < 20_000


def test_frames_of_any_size_give_the_same_peaks():
    signal = tone(4) * np.linspace(1, 0.2, 4 * RATE, dtype=np.float32)
    whole = waveform_of(signal)
    cuts = [0, 1, 1000, 1024, 77777, len(signal)]
    pieces = waveform_of(*(signal[a:b] for a, b in itertools.pairwise(cuts)))
    assert pieces == whole


# --- made by the packager, answered by the API --------------------------------


@pytest.fixture
def silence_then_tone(tmp_path) -> Path:
    signal = np.concatenate([np.zeros(3 * RATE, np.float32), tone(3, 0.9)])
    return write_wav(tmp_path / "silence-then-tone.wav", signal, rate=RATE)


def packaged(client, path: Path, **fields) -> Track:
    body = create_track(client, path.read_bytes(), **fields)
    track = Track.objects.get(pk=body["id"])
    package = hls_package_build(package_id=hls_package_request(track=track).pk)
    assert package is not None
    assert package.status == PackageStatus.READY, package.error
    assert WAVEFORM_NAME in package.files
    return track


@pytest.mark.django_db
def test_the_api_answers_the_peaks_of_the_packaged_track(
    auth_client, api_client, silence_then_tone
):
    track = packaged(auth_client, silence_then_tone, visibility="public")
    response = api_client.get(f"/api/v1/tracks/{track.pk}/waveform")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert "private" in response["Cache-Control"]
    waveform = json.loads(response.content)
    points = pairs(waveform)
    half = len(points) // 2
    assert all(p == (0, 0) for p in points[: half - 1])
    # 0.9 of full scale: 114 of 127.
    assert all(low <= -112 and high >= 112 for low, high in points[half + 1 :])
    # Small enough for every player: the whole JSON, uncompressed.
    assert len(response.content) < 20_000


@pytest.mark.django_db
def test_a_private_track_s_peaks_are_its_owner_s(
    auth_client, other_client, silence_then_tone
):
    track = packaged(auth_client, silence_then_tone, visibility="private")
    assert auth_client.get(f"/api/v1/tracks/{track.pk}/waveform").status_code == 200
    refused = other_client.get(f"/api/v1/tracks/{track.pk}/waveform")
    assert_error(refused, 404, "track_not_found")


@pytest.mark.django_db
def test_before_packaging_the_waveform_is_not_ready(auth_client, silence_then_tone):
    body = create_track(auth_client, silence_then_tone.read_bytes())
    response = auth_client.get(f"/api/v1/tracks/{body['id']}/waveform")
    assert_error(response, 409, "waveform_not_ready")


@pytest.mark.django_db
def test_peaks_of_a_track_on_s3_are_stored_and_read_there(
    s3, auth_client, silence_then_tone
):
    track = packaged(auth_client, silence_then_tone)
    package = track.hls_packages.get(status=PackageStatus.READY)
    head = s3.head_object(Bucket=s3.bucket, Key=package.directory + WAVEFORM_NAME)
    assert head["ContentType"] == "application/json"
    assert "immutable" in head["CacheControl"]
    response = auth_client.get(f"/api/v1/tracks/{track.pk}/waveform")
    assert response.status_code == 200
    assert json.loads(response.content)["version"] == 2
