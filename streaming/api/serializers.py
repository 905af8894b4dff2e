"""Serializers of the streaming API: output only."""

from __future__ import annotations

from rest_framework import serializers

from streaming.models import PackageStatus

MISSING = "missing"


class HlsOutputSerializer(serializers.Serializer[None]):
    status = serializers.ChoiceField(
        choices=[MISSING, *PackageStatus.values],
        help_text="missing: the track has no package; only ready has a URL.",
    )
    master_url = serializers.URLField(allow_null=True)
    expires_at = serializers.DateTimeField(allow_null=True)
    # A field named like DRF's Field.source attribute, as the API promises.
    source = serializers.ChoiceField(choices=["cdn", "origin"], allow_null=True)  # type: ignore[assignment]
