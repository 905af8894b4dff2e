"""Serializers of the streaming API: output only."""

from __future__ import annotations

from rest_framework import serializers

from streaming.models import PackageStatus

MISSING = "missing"


class LoudnessOutputSerializer(serializers.Serializer[None]):
    integrated_lufs = serializers.FloatField(allow_null=True)
    true_peak_dbtp = serializers.FloatField(allow_null=True)
    gain_db = serializers.FloatField(
        allow_null=True, help_text="null when the loudness is unknown (silence)."
    )


class HlsOutputSerializer(serializers.Serializer[None]):
    status = serializers.ChoiceField(
        choices=[MISSING, *PackageStatus.values],
        help_text="missing: the track has no package; only ready has a URL.",
    )
    master_url = serializers.URLField(allow_null=True)
    expires_at = serializers.DateTimeField(allow_null=True)
    # A field named like DRF's Field.source attribute, as the API promises.
    source = serializers.ChoiceField(choices=["cdn", "origin"], allow_null=True)  # type: ignore[assignment]
    loudness = LoudnessOutputSerializer(
        allow_null=True,
        help_text="The package's EBU R128 loudness and the gain that brings it "
        "to PLAYER_TARGET_LUFS (its true peak kept at -1 dBTP at most); null "
        "until the package is ready.",
    )
