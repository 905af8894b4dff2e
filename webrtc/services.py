"""Writes of calls: the server-owned call state machine.

Each function runs in one transaction and returns the frames to deliver;
the consumer sends them once the function has returned, so nothing is
broadcast before commit. Metrics are counted on commit.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from veza import metrics
from webrtc.errors import (
    AlreadyInCall,
    CallNotFound,
    CallStateError,
    DuplicateCall,
    InvalidCallee,
    NotAParty,
    TooManyInvites,
)
from webrtc.models import ACTIVE_STATES, Call, CallMedia, CallState, EndReason
from webrtc.selectors import user_group

# Reasons a client may give in call.hangup; anything else is a plain hangup.
CLIENT_HANGUP_REASONS = {
    "hangup": EndReason.HANGUP,
    "user_hangup": EndReason.HANGUP,
    "ice_failed": EndReason.ICE_FAILED,
    "media_failed": EndReason.MEDIA_FAILED,
}


@dataclass(frozen=True)
class Delivery:
    """A frame for one device (`channel`) or every device of a user (`group`)."""

    frame: dict[str, Any]
    channel: str = ""
    group: str = ""
    exclude: str = ""  # in a group send, the device that must not get it
    # For the receiving device: where its own messages in this call go now
    # ("" to forget the call).
    route_channel: str | None = None


@dataclass
class Outcome:
    call: Call
    deliveries: list[Delivery] = field(default_factory=list)


def _end(call: Call, *, reason: EndReason, now: dt.datetime) -> None:
    call.state = CallState.ENDED
    call.end_reason = reason
    call.ended_at = now
    if call.answered_at is not None:
        call.duration_seconds = (now - call.answered_at).total_seconds()
    call.full_clean()
    call.save(update_fields=["state", "end_reason", "ended_at", "duration_seconds"])
    transaction.on_commit(lambda: metrics.WEBRTC_CALLS.labels(reason.value).inc())


def _ended(call: Call, reason: str) -> dict[str, Any]:
    return {"type": "call.ended", "call_id": str(call.pk), "reason": reason}


def _locked(call_id: uuid.UUID) -> Call:
    call = Call.objects.select_for_update().filter(pk=call_id).first()
    if call is None:
        raise CallNotFound()
    return call


def _expire_stale(*, user_ids: list[int], ring_timeout: float) -> list[Delivery]:
    """End ringing calls whose ring timer was lost with its process."""
    now = timezone.now()
    deadline = now - dt.timedelta(seconds=ring_timeout)
    deliveries: list[Delivery] = []
    stale = Call.objects.select_for_update().filter(
        Q(caller_id__in=user_ids) | Q(callee_id__in=user_ids),
        state=CallState.RINGING,
        created_at__lt=deadline,
    )
    for call in stale:
        _end(call, reason=EndReason.INVITE_TIMEOUT, now=now)
        deliveries += _timeout_deliveries(call)
    return deliveries


def _timeout_deliveries(call: Call) -> list[Delivery]:
    frame = _ended(call, EndReason.INVITE_TIMEOUT)
    return [
        Delivery(frame, channel=call.caller_channel, route_channel=""),
        Delivery(frame, group=user_group(call.callee_id), route_channel=""),
    ]


def call_invite_admit(*, caller_id: int, callee_id: int) -> None:
    """Count an invite against its limits per minute: the caller's invites
    (WEBRTC_INVITES_PER_MINUTE, to the same callee or not) and the callee's
    rings from everyone (WEBRTC_RINGS_PER_MINUTE, higher: one caller within
    its own limit must not use up the rings everyone else may make).

    In the shared cache, so a caller with many sockets (or a callee rung
    from many) is limited across all of them and every process.
    """
    window = int(time.time() // 60)
    for key, limit in (
        (f"from:{caller_id}", settings.WEBRTC_INVITES_PER_MINUTE),
        (f"to:{callee_id}", settings.WEBRTC_RINGS_PER_MINUTE),
    ):
        key = f"webrtc:invites:{key}:{window}"
        cache.add(key, 0, timeout=120)
        try:
            count = cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, count := 1, timeout=120)
        if count > limit:
            raise TooManyInvites()


@transaction.atomic
def call_invite(
    *,
    caller: Any,
    callee_id: int,
    channel: str,
    sdp: dict[str, Any],
    media: str = CallMedia.AUDIO,
    call_id: uuid.UUID | None = None,
    ring_timeout: float,
) -> Outcome:
    """Start a call: it rings on every device of the callee, or ends busy."""
    user_model = get_user_model()
    if callee_id == caller.pk:
        raise InvalidCallee("You cannot call yourself.")
    # Both parties' rows are locked in id order, so two invites that involve
    # the same user are decided one after the other, in any process.
    locked = list(
        user_model.objects.select_for_update()
        .filter(pk__in=[caller.pk, callee_id], is_active=True)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    if callee_id not in locked:
        raise InvalidCallee()
    deliveries = _expire_stale(user_ids=locked, ring_timeout=ring_timeout)
    active = Call.objects.filter(state__in=ACTIVE_STATES)
    if active.filter(Q(caller=caller) | Q(callee=caller)).exists():
        raise AlreadyInCall()
    if call_id is not None and Call.objects.filter(pk=call_id).exists():
        raise DuplicateCall()
    call = Call(
        id=call_id or uuid.uuid4(),
        caller=caller,
        callee_id=callee_id,
        media=media,
        caller_channel=channel,
    )
    if active.filter(Q(caller_id=callee_id) | Q(callee_id=callee_id)).exists():
        now = timezone.now()
        call.state = CallState.ENDED
        call.end_reason = EndReason.BUSY
        call.ended_at = now
        call.full_clean()
        call.save(force_insert=True)
        transaction.on_commit(lambda: metrics.WEBRTC_CALLS.labels("busy").inc())
        deliveries.append(
            Delivery({"type": "call.busy", "call_id": str(call.pk)}, channel=channel)
        )
        return Outcome(call, deliveries)
    call.full_clean()
    call.save(force_insert=True)
    deliveries += [
        Delivery(
            {
                "type": "call.incoming",
                "call_id": str(call.pk),
                "from": {"id": caller.pk, "username": caller.get_username()},
                "media": call.media,
                "sdp": sdp,
            },
            group=user_group(callee_id),
        ),
        Delivery({"type": "call.ringing", "call_id": str(call.pk)}, channel=channel),
    ]
    return Outcome(call, deliveries)


@transaction.atomic
def call_answer(
    *, user: Any, call_id: uuid.UUID, channel: str, sdp: dict[str, Any]
) -> Outcome:
    """The first callee device to answer gets the call; the others stop ringing."""
    call = _locked(call_id)
    if call.callee_id != user.pk:
        raise NotAParty("Only the callee can answer.")
    if call.state != CallState.RINGING:
        raise CallStateError("The call is no longer ringing.")
    now = timezone.now()
    call.state = CallState.CONNECTED
    call.answered_at = now
    call.callee_channel = channel
    call.full_clean()
    call.save(update_fields=["state", "answered_at", "callee_channel"])
    waited = (now - call.created_at).total_seconds()
    transaction.on_commit(lambda: metrics.WEBRTC_ANSWER_SECONDS.observe(waited))
    return Outcome(
        call,
        [
            Delivery(
                {"type": "call.answered", "call_id": str(call.pk), "sdp": sdp},
                channel=call.caller_channel,
                route_channel=channel,
            ),
            Delivery(
                {"type": "call.answered_elsewhere", "call_id": str(call.pk)},
                group=user_group(call.callee_id),
                exclude=channel,
                route_channel="",
            ),
        ],
    )


@transaction.atomic
def call_reject(*, user: Any, call_id: uuid.UUID, channel: str) -> Outcome:
    """The callee declines a ringing call, on all of its devices."""
    call = _locked(call_id)
    if call.callee_id != user.pk:
        raise NotAParty("Only the callee can reject.")
    if call.state != CallState.RINGING:
        raise CallStateError("The call is no longer ringing.")
    _end(call, reason=EndReason.REJECTED, now=timezone.now())
    return Outcome(
        call,
        [
            Delivery(
                {"type": "call.rejected", "call_id": str(call.pk)},
                channel=call.caller_channel,
                route_channel="",
            ),
            Delivery(
                _ended(call, EndReason.REJECTED),
                group=user_group(call.callee_id),
                route_channel="",
            ),
        ],
    )


@transaction.atomic
def call_cancel(*, user: Any, call_id: uuid.UUID, channel: str) -> Outcome:
    """The caller gives up before an answer."""
    call = _locked(call_id)
    if call.caller_id != user.pk or call.caller_channel != channel:
        raise NotAParty("Only the calling device can cancel.")
    if call.state != CallState.RINGING:
        raise CallStateError("The call is no longer ringing.")
    _end(call, reason=EndReason.CANCELLED, now=timezone.now())
    frame = _ended(call, EndReason.CANCELLED)
    return Outcome(
        call,
        [
            Delivery(frame, channel=channel, route_channel=""),
            Delivery(frame, group=user_group(call.callee_id), route_channel=""),
        ],
    )


def call_hangup(
    *, user: Any, call_id: uuid.UUID, channel: str, reason: str = "hangup"
) -> Outcome:
    """Either party ends the call; while ringing it is a cancel or a reject."""
    with transaction.atomic():
        call = _locked(call_id)
        if user.pk not in (call.caller_id, call.callee_id):
            raise NotAParty()
        ringing = call.state == CallState.RINGING
    if ringing and user.pk == call.caller_id:
        return call_cancel(user=user, call_id=call_id, channel=channel)
    if ringing:
        return call_reject(user=user, call_id=call_id, channel=channel)
    return _hangup_connected(user=user, call_id=call_id, channel=channel, reason=reason)


@transaction.atomic
def _hangup_connected(
    *, user: Any, call_id: uuid.UUID, channel: str, reason: str
) -> Outcome:
    call = _locked(call_id)
    if call.state != CallState.CONNECTED:
        raise CallStateError("The call has ended.")
    if channel == call.caller_channel and user.pk == call.caller_id:
        other = call.callee_channel
    elif channel == call.callee_channel and user.pk == call.callee_id:
        other = call.caller_channel
    else:
        raise NotAParty("This device is not the one in the call.")
    end_reason = CLIENT_HANGUP_REASONS.get(reason, EndReason.HANGUP)
    _end(call, reason=end_reason, now=timezone.now())
    frame = _ended(call, end_reason)
    return Outcome(
        call,
        [
            Delivery(frame, channel=other, route_channel=""),
            Delivery(frame, channel=channel, route_channel=""),
        ],
    )


@transaction.atomic
def call_resume(*, user: Any, call_id: uuid.UUID, channel: str) -> Outcome:
    """A party's new socket takes over its side of the call.

    A device whose socket dropped reconnects with a new channel; binding the
    call to it before the grace runs out keeps the call alive. Another
    device of the same user may take the call over the same way; the device
    it leaves is told.
    """
    call = _locked(call_id)
    if user.pk == call.caller_id:
        side = "caller_channel"
    elif user.pk == call.callee_id:
        side = "callee_channel"
    else:
        raise NotAParty()
    if call.state == CallState.RINGING and side == "callee_channel":
        raise CallStateError("The call is ringing; answer it from this device.")
    if call.state not in ACTIVE_STATES:
        raise CallStateError("The call has ended.")
    previous = getattr(call, side)
    setattr(call, side, channel)
    call.full_clean()
    call.save(update_fields=[side])
    ringing = call.state == CallState.RINGING
    other = call.callee_channel if side == "caller_channel" else call.caller_channel
    deliveries = [
        Delivery(
            {"type": "call.resumed", "call_id": str(call.pk), "state": call.state},
            channel=channel,
            # While ringing the caller's frames still go to every device of
            # the callee, which the consumer knows without a channel.
            route_channel=None if ringing else other,
        )
    ]
    if not ringing:
        deliveries.append(
            Delivery(
                {"type": "call.peer_resumed", "call_id": str(call.pk)},
                channel=other,
                route_channel=channel,
            )
        )
    if previous and previous != channel:
        deliveries.append(
            Delivery(
                {"type": "call.resumed_elsewhere", "call_id": str(call.pk)},
                channel=previous,
                route_channel="",
            )
        )
    return Outcome(call, deliveries)


@transaction.atomic
def call_expire(*, call_id: uuid.UUID) -> Outcome | None:
    """The ring timer fired: end the call if nobody answered."""
    call = Call.objects.select_for_update().filter(pk=call_id).first()
    if call is None or call.state != CallState.RINGING:
        return None
    _end(call, reason=EndReason.INVITE_TIMEOUT, now=timezone.now())
    return Outcome(call, _timeout_deliveries(call))


@transaction.atomic
def call_device_gone(*, channel: str) -> list[Delivery]:
    """A party's device stayed away past the grace: its calls end peer_gone."""
    deliveries: list[Delivery] = []
    now = timezone.now()
    calls = Call.objects.select_for_update().filter(
        Q(state=CallState.RINGING, caller_channel=channel)
        | Q(state=CallState.CONNECTED, caller_channel=channel)
        | Q(state=CallState.CONNECTED, callee_channel=channel)
    )
    for call in calls:
        ringing = call.state == CallState.RINGING
        _end(call, reason=EndReason.PEER_GONE, now=now)
        frame = _ended(call, EndReason.PEER_GONE)
        if ringing:
            deliveries.append(
                Delivery(frame, group=user_group(call.callee_id), route_channel="")
            )
        else:
            other = (
                call.callee_channel
                if channel == call.caller_channel
                else call.caller_channel
            )
            deliveries.append(Delivery(frame, channel=other, route_channel=""))
    return deliveries
