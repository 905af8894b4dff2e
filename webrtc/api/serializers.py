"""Input and output shapes of the webrtc API."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from webrtc.models import Call


class IceServerOutputSerializer(serializers.Serializer[Any]):
    urls = serializers.ListField(child=serializers.CharField())
    username = serializers.CharField(required=False)
    credential = serializers.CharField(required=False)


class IceConfigOutputSerializer(serializers.Serializer[Any]):
    iceServers = IceServerOutputSerializer(many=True)
    hasTurn = serializers.BooleanField()
    ttl = serializers.IntegerField(allow_null=True)


class TicketOutputSerializer(serializers.Serializer[Any]):
    ticket = serializers.CharField()
    expires_in = serializers.IntegerField()
    url = serializers.CharField(help_text="Websocket path to open with the ticket.")


class CallPartyOutputSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    username = serializers.CharField()


class CallOutputSerializer(serializers.ModelSerializer[Call]):
    caller = CallPartyOutputSerializer()
    callee = CallPartyOutputSerializer()

    class Meta:
        model = Call
        fields = [
            "id",
            "caller",
            "callee",
            "media",
            "state",
            "end_reason",
            "created_at",
            "answered_at",
            "ended_at",
            "duration_seconds",
        ]
