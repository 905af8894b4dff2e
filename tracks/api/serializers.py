"""Input and output serializers of the tracks API."""

from __future__ import annotations

import re
from typing import Any

from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.utils import html

from tracks.models import Track, UploadSession, Visibility

# A title is one line of text: no control characters (C0, DEL, C1) and not
# only spaces (the characters str.strip() removes that are not controls).
# The schema publishes the same pattern, so a client checking a title
# against it and the server agree on every string.
_CONTROL = r"\x00-\x1f\x7f-\x9f"
_SPACE = r"\x20\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
TITLE_PATTERN = f"^[^{_CONTROL}]*[^{_CONTROL}{_SPACE}][^{_CONTROL}]*$"
_TITLE = re.compile(TITLE_PATTERN)


class _TitleValidator(RegexValidator):
    """TITLE_PATTERN, which drf-spectacular publishes as the field's pattern."""

    regex = TITLE_PATTERN
    message = "A title is one line of text, not only spaces."
    code = "invalid_title"

    def __call__(self, value: Any) -> None:
        # RegexValidator searches, and Python's `$` also matches before a
        # final newline; JSON Schema's does not.
        if not _TITLE.fullmatch(str(value)):
            raise serializers.ValidationError(self.message, code=self.code)


class TitleField(serializers.CharField):
    """A track title: checked as sent, stored without surrounding spaces."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            max_length=200,
            allow_blank=False,
            trim_whitespace=False,
            validators=[_TitleValidator()],
            **kwargs,
        )

    def get_value(self, dictionary: Any) -> Any:
        # DRF reads an empty form field as "not sent" (an HTML form sends
        # every field); an API client sending `title=` means an empty title.
        if html.is_html_input(dictionary) and dictionary.get(self.field_name) == "":
            return ""
        return super().get_value(dictionary)

    def to_internal_value(self, data: Any) -> str:
        # CharField would take a JSON number or boolean as its text.
        if not isinstance(data, str):
            self.fail("invalid")
        return str(super().to_internal_value(data))

    def run_validation(self, data: Any = serializers.empty) -> Any:
        value = super().run_validation(data)
        return value.strip() if isinstance(value, str) else value


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
            "status",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class TrackCreateInputSerializer(serializers.Serializer[None]):
    file = serializers.FileField(allow_empty_file=True)
    title = TitleField(
        required=False, help_text="Defaults to the file name without extension."
    )
    visibility = serializers.ChoiceField(
        choices=Visibility.choices, default=Visibility.PRIVATE
    )


class TrackUpdateInputSerializer(serializers.Serializer[None]):
    title = TitleField(required=False)
    visibility = serializers.ChoiceField(choices=Visibility.choices, required=False)


class PlaybackUrlOutputSerializer(serializers.Serializer[None]):
    url = serializers.URLField()
    expires_at = serializers.DateTimeField()
    # A field named like DRF's Field.source attribute, as the API promises.
    source = serializers.ChoiceField(choices=["cdn", "s3", "origin"])  # type: ignore[assignment]


class UploadQuotaOutputSerializer(serializers.Serializer[Any]):
    """A user's upload limits and usage; a null limit is no limit."""

    storage_bytes_limit = serializers.IntegerField(allow_null=True)
    stored_bytes = serializers.IntegerField()
    daily_bytes_limit = serializers.IntegerField(allow_null=True)
    day_bytes = serializers.IntegerField(help_text="Bytes uploaded today (UTC).")
    daily_tracks_limit = serializers.IntegerField(allow_null=True)
    day_tracks = serializers.IntegerField(help_text="Tracks uploaded today (UTC).")
    open_uploads = serializers.IntegerField(
        help_text="Resumable uploads under way; each counts as a track today."
    )
    open_upload_bytes = serializers.IntegerField(
        help_text="Their declared bytes, held against the storage and daily "
        "byte limits until they end."
    )
    resets_at = serializers.DateTimeField(
        help_text="When the daily counts start again (next UTC midnight)."
    )


class UploadErrorOutputSerializer(serializers.Serializer[Any]):
    code = serializers.CharField()
    message = serializers.CharField()


class UploadSessionOutputSerializer(serializers.ModelSerializer[UploadSession]):
    track = serializers.UUIDField(
        source="track_id",
        allow_null=True,
        help_text="The track made from the upload, once `ready`.",
    )
    error = serializers.SerializerMethodField(
        help_text="Why the upload `failed` (the same codes as a one-request upload)."
    )

    class Meta:
        model = UploadSession
        fields = [
            "id",
            "status",
            "offset",
            "length",
            "track",
            "error",
            "filename",
            "title",
            "visibility",
            "created_at",
            "expires_at",
        ]
        read_only_fields = fields

    @extend_schema_field(UploadErrorOutputSerializer(allow_null=True))
    def get_error(self, session: UploadSession) -> dict[str, str] | None:
        if not session.error_code:
            return None
        return {"code": session.error_code, "message": session.error_message}


class S3MultipartCreateInputSerializer(serializers.Serializer[Any]):
    """What Uppy's @uppy/aws-s3 sends to open a multipart upload, and the size
    (top level or in `metadata`), which the quota needs up front."""

    filename = serializers.CharField(required=False, allow_blank=True, max_length=255)
    type = serializers.CharField(required=False, allow_blank=True, max_length=255)
    metadata = serializers.DictField(required=False, default=dict)
    size = serializers.IntegerField(required=False, min_value=0)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        metadata = attrs["metadata"]
        size = attrs.get("size", metadata.get("size"))
        if isinstance(size, str) and size.isdigit():
            size = int(size)
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise serializers.ValidationError(
                {"size": "The file's size in bytes, at the top level or in metadata."}
            )
        visibility = metadata.get("visibility") or Visibility.PRIVATE
        if visibility not in Visibility.values:
            raise serializers.ValidationError(
                {"metadata": "visibility is public, unlisted or private."}
            )
        title = metadata.get("title") or ""
        return {
            "length": size,
            "filename": attrs.get("filename") or str(metadata.get("name") or ""),
            "content_type": attrs.get("type") or "",
            "title": str(title).strip()[:200],
            "visibility": visibility,
        }
