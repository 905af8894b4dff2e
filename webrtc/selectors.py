"""Reads of calls: history and the routing checks of relayed messages."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.db.models import Q, QuerySet

from webrtc.errors import CallNotFound, CallStateError, NotAParty
from webrtc.models import Call, CallState


def user_group(user_id: int) -> str:
    """The channel-layer group of every device of a user."""
    return f"webrtc.user.{int(user_id)}"


def call_list_for_user(*, user: Any) -> QuerySet[Call]:
    """Calls the user made or received, newest first."""
    return (
        Call.objects.filter(Q(caller=user) | Q(callee=user))
        .select_related("caller", "callee")
        .order_by("-created_at")
    )


def call_peer_route(*, user_id: int, call_id: UUID, channel: str) -> tuple[str, str]:
    """Where a relayed message from this device goes: ("channel"|"group", name).

    Only the two parties' active devices may send; before the answer the
    caller's candidates go to every device of the callee.
    """
    call = Call.objects.filter(pk=call_id).first()
    if call is None:
        raise CallNotFound()
    if user_id not in (call.caller_id, call.callee_id):
        raise NotAParty()
    if call.state == CallState.RINGING and channel == call.caller_channel:
        return ("group", user_group(call.callee_id))
    if call.state == CallState.CONNECTED:
        if channel == call.caller_channel:
            return ("channel", call.callee_channel)
        if channel == call.callee_channel:
            return ("channel", call.caller_channel)
        raise NotAParty("This device is not the one in the call.")
    raise CallStateError()
