"""The gain that brings a track to the players' target loudness."""

from __future__ import annotations

# The ceiling a gain may lift the true peak to (what the large services use).
TRUE_PEAK_CEILING_DBTP = -1.0


def normalising_gain_db(
    *, integrated_lufs: float | None, true_peak_dbtp: float | None, target_lufs: float
) -> float | None:
    """Decibels to add to reach `target_lufs` without lifting the true peak
    over -1 dBTP; None when the loudness is unknown (silence, an old package)."""
    if integrated_lufs is None:
        return None
    gain = target_lufs - integrated_lufs
    if true_peak_dbtp is not None:
        gain = min(gain, TRUE_PEAK_CEILING_DBTP - true_peak_dbtp)
    return round(gain, 2)
