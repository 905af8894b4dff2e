"""Input and output serializers of the tracks API."""

from __future__ import annotations

import re
from typing import Any

from django.core.validators import RegexValidator
from rest_framework import serializers
from rest_framework.utils import html

from tracks.models import Track, Visibility

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
    resets_at = serializers.DateTimeField(
        help_text="When the daily counts start again (next UTC midnight)."
    )
