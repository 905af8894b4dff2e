"""Waveform peaks, in the BBC audiowaveform JSON format (version 2)."""

# The packager feeds every decoded frame here (the same decode pass as the
# HLS renditions and the loudness meter). Each block of BLOCK samples keeps
# its minimum and maximum over every channel, as 8-bit values; at the end
# the blocks are grouped so that the waveform has at most MAX_POINTS points,
# what a full-width drawing needs. A 2-hour track at 48 kHz is 2.7 million
# blocks, 5.4 MB while it is packaged.

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

WAVEFORM_NAME = "waveform.json"
BLOCK = 128
MAX_POINTS = 2000


def _to_8_bits(values: npt.NDArray[np.float32]) -> npt.NDArray[np.int8]:
    return np.rint(np.clip(values, -1.0, 1.0) * 127).astype(np.int8)


class Peaks:
    """Minimum and maximum of every BLOCK samples, fed planar float frames."""

    def __init__(self) -> None:
        self._mins: list[npt.NDArray[np.int8]] = []
        self._maxs: list[npt.NDArray[np.int8]] = []
        # Samples of an unfinished block: per-sample min and max over channels.
        self._low = np.empty(0, dtype=np.float32)
        self._high = np.empty(0, dtype=np.float32)

    def add(self, planes: npt.NDArray[Any]) -> None:
        """`planes`: (channels, samples), float values in [-1, 1]."""
        planes = np.asarray(planes, dtype=np.float32)
        if planes.ndim == 1:
            planes = planes[np.newaxis, :]
        low = np.concatenate([self._low, planes.min(axis=0)])
        high = np.concatenate([self._high, planes.max(axis=0)])
        whole = len(low) - len(low) % BLOCK
        if whole:
            self._mins.append(_to_8_bits(low[:whole].reshape(-1, BLOCK).min(axis=1)))
            self._maxs.append(_to_8_bits(high[:whole].reshape(-1, BLOCK).max(axis=1)))
        self._low, self._high = low[whole:], high[whole:]

    def waveform(self, *, sample_rate: int) -> dict[str, Any]:
        """The audiowaveform JSON (version 2, one channel, 8 bits)."""
        mins = list(self._mins)
        maxs = list(self._maxs)
        if len(self._low):  # the last, short block
            mins.append(_to_8_bits(self._low.min(keepdims=True)))
            maxs.append(_to_8_bits(self._high.max(keepdims=True)))
        low = np.concatenate(mins) if mins else np.zeros(0, np.int8)
        high = np.concatenate(maxs) if maxs else np.zeros(0, np.int8)
        group = max(1, math.ceil(len(low) / MAX_POINTS))
        if group > 1:
            pad = (-len(low)) % group
            # Padding that can never win a min or a max.
            low = np.concatenate([low, np.full(pad, 127, np.int8)])
            high = np.concatenate([high, np.full(pad, -128, np.int8)])
            low = low.reshape(-1, group).min(axis=1)
            high = high.reshape(-1, group).max(axis=1)
        data = np.empty(2 * len(low), dtype=np.int16)
        data[0::2], data[1::2] = low, high
        return {
            "version": 2,
            "channels": 1,
            "sample_rate": sample_rate,
            "samples_per_pixel": BLOCK * group,
            "bits": 8,
            "length": len(low),
            "data": data.tolist(),
        }
