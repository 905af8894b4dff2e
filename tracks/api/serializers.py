"""Input and output serializers of the tracks API."""

from __future__ import annotations

from rest_framework import serializers

from tracks.models import Track, Visibility


class TrackOutputSerializer(serializers.ModelSerializer[Track]):
    owner = serializers.CharField(source="owner.get_username", read_only=True)

    class Meta:
        model = Track
        # Never storage_backend or storage_key: where bytes live is private.
        fields = [
            "id",
            "title",
            "visibility",
            "owner",
            "original_filename",
            "mime_type",
            "size_bytes",
            "sha256",
            "duration_seconds",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class TrackCreateInputSerializer(serializers.Serializer[None]):
    file = serializers.FileField(allow_empty_file=True)
    title = serializers.CharField(max_length=200, required=False, allow_blank=False)
    visibility = serializers.ChoiceField(
        choices=Visibility.choices, default=Visibility.PRIVATE
    )


class TrackUpdateInputSerializer(serializers.Serializer[None]):
    title = serializers.CharField(max_length=200, required=False, allow_blank=False)
    visibility = serializers.ChoiceField(choices=Visibility.choices, required=False)


class PlaybackUrlOutputSerializer(serializers.Serializer[None]):
    url = serializers.URLField()
    expires_at = serializers.DateTimeField()
    # A field named like DRF's Field.source attribute, as the API promises.
    source = serializers.ChoiceField(choices=["cdn", "s3", "origin"])  # type: ignore[assignment]


class ErrorDetailSerializer(serializers.Serializer[None]):
    code = serializers.CharField()
    message = serializers.CharField()
    details = serializers.DictField()


class ErrorOutputSerializer(serializers.Serializer[None]):
    error = ErrorDetailSerializer()
