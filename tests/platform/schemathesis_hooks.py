"""Schemathesis hooks: two values the schema cannot describe, taught to it."""

# Loaded through SCHEMATHESIS_HOOKS by tests/platform/test_schemathesis.py.

from __future__ import annotations

import datetime as dt
import hashlib
import io
import wave
from base64 import b64encode
from urllib.parse import urlencode

import schemathesis
from hypothesis import strategies as st


def _wav(frames: int, rate: int, channels: int, seed: int) -> bytes:
    # 16-bit PCM noise: a real WAV file of a fraction of a second, different
    # for every seed, as a listener's upload would be.
    samples = hashlib.shake_256(seed.to_bytes(8, "big")).digest(frames * channels * 2)
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples)
    return out.getvalue()


# The upload's `file` is documented as audio (its encoding lists the audio
# media types) and the server reads the bytes to tell: random bytes are a
# 415, rightly. Schemathesis draws a registered media type's bytes from here.
schemathesis.openapi.media_type(
    "audio/wav",
    st.builds(
        _wav,
        frames=st.integers(min_value=400, max_value=4000),
        rate=st.sampled_from([8000, 22050, 44100]),
        channels=st.sampled_from([1, 2]),
        seed=st.integers(min_value=0, max_value=2**63),
    ),
)


@schemathesis.hook
def map_case(
    context: schemathesis.HookContext, case: schemathesis.Case
) -> schemathesis.Case:
    """A list's cursor is opaque: only one the list wrote is valid, and any
    other string is a 400 `invalid_cursor`, which no schema can express. A
    schema-valid case gets a cursor as the list writes them (DRF's: base64 of
    `p=<created_at>`), at a position drawn from the generated string."""
    meta = case.meta
    cursor = case.query.get("cursor") if isinstance(case.query, dict) else None
    if (
        meta is None
        or not meta.generation.mode.is_positive
        or not isinstance(cursor, str)
    ):
        return case
    seconds = int.from_bytes(hashlib.sha256(cursor.encode()).digest()[:4], "big")
    position = dt.datetime(2020, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=seconds)
    case.query["cursor"] = b64encode(
        urlencode({"p": position.isoformat()}).encode()
    ).decode()
    return case
