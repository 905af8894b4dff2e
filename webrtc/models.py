"""The Call record: two parties, a server-owned state and how it ended."""

from __future__ import annotations

import datetime as dt
import uuid

from django.conf import settings
from django.db import models
from django.db.models import F, Q


class CallState(models.TextChoices):
    RINGING = "ringing", "Ringing"
    CONNECTED = "connected", "Connected"
    ENDED = "ended", "Ended"


class EndReason(models.TextChoices):
    HANGUP = "hangup", "Hung up"
    REJECTED = "rejected", "Rejected"
    CANCELLED = "cancelled", "Cancelled by the caller"
    BUSY = "busy", "Callee busy"
    INVITE_TIMEOUT = "invite_timeout", "Not answered in time"
    PEER_GONE = "peer_gone", "A party's device went away"
    ICE_FAILED = "ice_failed", "Media connection failed"
    MEDIA_FAILED = "media_failed", "Camera or microphone failed"


class CallMedia(models.TextChoices):
    AUDIO = "audio", "Audio"
    VIDEO = "video", "Video"


ACTIVE_STATES = (CallState.RINGING, CallState.CONNECTED)


class Call(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    caller = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="calls_made"
    )
    callee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="calls_received",
    )
    media = models.CharField(
        max_length=8, choices=CallMedia.choices, default=CallMedia.AUDIO
    )
    state = models.CharField(
        max_length=16, choices=CallState.choices, default=CallState.RINGING
    )
    end_reason = models.CharField(
        max_length=16, choices=EndReason.choices, blank=True, default=""
    )
    # Channel-layer names of the devices in the call: where relayed SDP and
    # candidates go. The callee's is set by the device that answers.
    caller_channel = models.CharField(max_length=200, blank=True, default="")
    callee_channel = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    duration_seconds = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(caller=F("callee")), name="webrtc_call_two_parties"
            ),
            models.CheckConstraint(
                condition=Q(state="ended", ended_at__isnull=False) & ~Q(end_reason="")
                | Q(state__in=["ringing", "connected"], end_reason=""),
                name="webrtc_call_ended_has_reason",
            ),
            models.CheckConstraint(
                condition=~Q(state="connected") | Q(answered_at__isnull=False),
                name="webrtc_call_connected_was_answered",
            ),
        ]
        indexes = [
            models.Index(
                fields=["caller", "state"],
                name="webrtc_call_caller_active",
                condition=Q(state__in=["ringing", "connected"]),
            ),
            models.Index(
                fields=["callee", "state"],
                name="webrtc_call_callee_active",
                condition=Q(state__in=["ringing", "connected"]),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.caller_id} → {self.callee_id} ({self.state})"

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_STATES

    def ring_deadline(self, ring_timeout: float) -> dt.datetime:
        return self.created_at + dt.timedelta(seconds=ring_timeout)
