"""The API schema's shared parts: tags by app, the one error shape, links."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from drf_spectacular import openapi
from rest_framework import serializers


class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's schema, each operation tagged with its view's app
    (SPECTACULAR_SETTINGS["TAGS"] describes them)."""

    def get_tags(self) -> list[str]:
        app = apps.get_containing_app_config(type(self.view).__module__)
        return [app.label] if app else super().get_tags()


class ErrorDetailSerializer(serializers.Serializer[None]):
    code = serializers.CharField(help_text="Stable, machine-readable reason.")
    message = serializers.CharField(help_text="For people; may change.")
    details = serializers.DictField(
        help_text="Safe facts about the failure, such as the invalid fields."
    )


class ErrorOutputSerializer(serializers.Serializer[None]):
    """Every API error: `{"error": {"code", "message", "details"}}`."""

    error = ErrorDetailSerializer()


def error_responses(*statuses: int) -> dict[int, type[ErrorOutputSerializer]]:
    """The `responses` entries of the error statuses an operation answers."""
    return dict.fromkeys(statuses, ErrorOutputSerializer)


# Operations reachable with what another one answers, as OpenAPI links (which
# drf-spectacular does not generate): an upload's `id` is every per-track
# operation's `track_id`, and a listed upload session's `id` opens it.
# Clients and schemathesis's stateful tests follow them.
_TRACK_ID = {"track_id": "$response.body#/id"}
LINKS: dict[tuple[str, str], dict[str, dict[str, Any]]] = {
    ("tracks_upload", "201"): {
        "GetTrack": {"operationId": "tracks_retrieve", "parameters": _TRACK_ID},
        "UpdateTrack": {"operationId": "tracks_update", "parameters": _TRACK_ID},
        "DeleteTrack": {"operationId": "tracks_delete", "parameters": _TRACK_ID},
        "StreamTrack": {"operationId": "tracks_stream", "parameters": _TRACK_ID},
        "DownloadTrack": {"operationId": "tracks_download", "parameters": _TRACK_ID},
        "PlayTrackOverHls": {"operationId": "tracks_hls", "parameters": _TRACK_ID},
        "TrackWaveform": {"operationId": "tracks_waveform", "parameters": _TRACK_ID},
    },
    ("uploads_list", "200"): {
        "GetUpload": {
            "operationId": "uploads_retrieve",
            "parameters": {"upload_id": "$response.body#/results/0/id"},
        },
    },
}


def add_links(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: write LINKS into the responses."""
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            for status, response in operation.get("responses", {}).items():
                links = LINKS.get((operation.get("operationId"), status))
                if links:
                    response["links"] = links
    return result
