"""The call signaling websocket (`/ws/calls/`); protocol in docs/SIGNALING.md."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any
from urllib.parse import parse_qs

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import ChannelFull
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.contrib.auth import get_user_model
from redis.exceptions import RedisError

from veza import metrics
from veza.errors import DomainError
from webrtc import ice, selectors, services, tickets
from webrtc.errors import BadMessage, InvalidCallee, PeerUnreachable
from webrtc.models import CallMedia, CallState

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
# A send the channel layer cannot take (full queue, Redis pool exhausted or
# unreachable) drops that frame; it must not kill the sender's socket.
LAYER_ERRORS = (ChannelFull, RedisError, OSError)
CLOSE_FLOODING = 4429

CLIENT_TYPES = (
    "call.invite",
    "call.answer",
    "call.candidate",
    "call.reject",
    "call.cancel",
    "call.hangup",
    "call.negotiate",
    "call.resume",
    "ice.refresh",
    "ping",
)

# Timers outlive the consumer that started them (a ring timeout, a grace
# after a disconnect), so strong references are kept here.
BACKGROUND: set[asyncio.Task[None]] = set()


def spawn(coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    task = asyncio.get_running_loop().create_task(coroutine)
    BACKGROUND.add(task)
    task.add_done_callback(BACKGROUND.discard)
    return task


def _call_id(message: dict[str, Any]) -> uuid.UUID:
    raw = message.get("call_id")
    try:
        return uuid.UUID(str(raw))
    except ValueError:
        raise BadMessage("call_id must be a UUID.") from None


def _description(value: Any, kind: str | None = None) -> dict[str, Any]:
    """An RTCSessionDescriptionInit: {"type": "offer"|"answer", "sdp": str}."""
    if (
        not isinstance(value, dict)
        or value.get("type") not in ("offer", "answer")
        or not isinstance(value.get("sdp"), str)
        or (kind is not None and value["type"] != kind)
    ):
        wanted = kind or "offer or answer"
        raise BadMessage(f'sdp must be {{"type": "{wanted}", "sdp": "..."}}.')
    return {"type": value["type"], "sdp": value["sdp"]}


class TokenBucket:
    """A per-connection rate limit: `rate` per second, bursts up to `burst`."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.updated = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class CallConsumer(AsyncJsonWebsocketConsumer):
    user: Any = None
    accepted = False

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels' own dispatch first hops to the sync thread to close stale
        # database connections, for every frame. Every database call here
        # goes through database_sync_to_async, which does the same in its own
        # hop, so for relayed frames that hop was pure cost: one shared
        # thread per process, and the cap on frames relayed per second.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            user = await self._ticket_user()
        if user is None:
            # A close code needs an accepted socket; before accept the
            # client would only see an HTTP 403.
            await self.accept()
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.user = user
        self.group = selectors.user_group(user.pk)
        # Per call: where this device's relayed messages go, ("channel" or
        # "group", name). Only parties have an entry.
        self.routes: dict[str, tuple[str, str]] = {}
        self.ring_timers: dict[str, asyncio.Task[None]] = {}
        self.bucket = TokenBucket(
            settings.WEBRTC_MESSAGE_RATE, settings.WEBRTC_MESSAGE_BURST
        )
        self.violations = 0
        await self.channel_layer.group_add(self.group, self.channel_name)
        self.accepted = True
        metrics.WEBRTC_CONNECTIONS.inc()
        await self.accept()

    async def _ticket_user(self) -> Any:
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        ticket = (query.get("ticket") or [""])[0]
        user_id = await tickets.ticket_redeem(ticket)
        if user_id is None:
            return None
        return await database_sync_to_async(
            get_user_model().objects.filter(pk=user_id, is_active=True).first
        )()

    async def disconnect(self, code: int) -> None:
        if not self.accepted:
            return
        self.accepted = False
        metrics.WEBRTC_CONNECTIONS.dec()
        await self.channel_layer.group_discard(self.group, self.channel_name)
        if self.routes:
            spawn(self._device_gone_after_grace())

    # Incoming frames -------------------------------------------------------

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None
    ) -> None:
        if not self.accepted:
            return
        if not self.bucket.take():
            self.violations += 1
            metrics.WEBRTC_SIGNALING_MESSAGES.labels("invalid", "rate_limited").inc()
            if self.violations > settings.WEBRTC_MAX_VIOLATIONS:
                await self.close(code=CLOSE_FLOODING)
                return
            await self._error("rate_limited", "Too many messages; slow down.")
            return
        if text_data is None:
            await self._invalid("binary_frame", "Send JSON text frames.")
            return
        if len(text_data) > settings.WEBRTC_MAX_MESSAGE_BYTES or (
            len(text_data.encode()) > settings.WEBRTC_MAX_MESSAGE_BYTES
        ):
            self.violations += 1
            await self._invalid(
                "message_too_large",
                f"Messages are limited to {settings.WEBRTC_MAX_MESSAGE_BYTES} bytes.",
            )
            return
        try:
            message = json.loads(text_data)
        except ValueError:
            await self._invalid("bad_json", "The frame is not JSON.")
            return
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            await self._invalid("bad_message", 'A message is an object with "type".')
            return
        kind = message["type"]
        ref = message.get("id")
        ref = ref if isinstance(ref, str | int) and not isinstance(ref, bool) else None
        if kind not in CLIENT_TYPES:
            await self._invalid("unknown_type", "Unknown message type.", ref=ref)
            return
        handler: Callable[[dict[str, Any]], Awaitable[None]] = getattr(
            self, "on_" + kind.replace(".", "_")
        )
        try:
            await handler(message)
        except DomainError as error:
            metrics.WEBRTC_SIGNALING_MESSAGES.labels(kind, "error").inc()
            await self._error(error.code, error.message, ref=ref)
            return
        except Exception:
            # A value no check foresaw must not close the socket (Channels
            # would, with 1011) and end the user's call with it.
            logger.exception("signaling: %s failed", kind)
            metrics.WEBRTC_SIGNALING_MESSAGES.labels(kind, "error").inc()
            await self._error(
                "internal_error", "The message could not be handled.", ref=ref
            )
            return
        metrics.WEBRTC_SIGNALING_MESSAGES.labels(kind, "ok").inc()

    async def _invalid(self, code: str, message: str, ref: Any = None) -> None:
        metrics.WEBRTC_SIGNALING_MESSAGES.labels("invalid", "error").inc()
        await self._error(code, message, ref=ref)

    async def _error(self, code: str, message: str, ref: Any = None) -> None:
        await self.send_json(
            {"type": "error", "code": code, "message": message, "ref": ref}
        )

    async def on_ping(self, message: dict[str, Any]) -> None:
        await self.send_json({"type": "pong", "ref": message.get("id")})

    async def on_ice_refresh(self, message: dict[str, Any]) -> None:
        config = ice.ice_config(user=self.user)
        await self.send_json({"type": "ice.servers", **config})

    async def on_call_invite(self, message: dict[str, Any]) -> None:
        to = message.get("to")
        if isinstance(to, bool) or not isinstance(to, int | str):
            raise BadMessage('"to" must be a user id.')
        try:
            callee_id = int(to)
        except ValueError:
            raise BadMessage('"to" must be a user id.') from None
        # Ids are positive 64-bit integers in every database; a larger one
        # would overflow in the query rather than match nobody.
        if not 0 < callee_id < 2**63:
            raise InvalidCallee()
        media = message.get("media", CallMedia.AUDIO)
        if media not in CallMedia.values:
            raise BadMessage('"media" must be "audio" or "video".')
        await database_sync_to_async(services.call_invite_admit)(
            caller_id=self.user.pk, callee_id=callee_id
        )
        outcome = await database_sync_to_async(services.call_invite)(
            caller=self.user,
            callee_id=callee_id,
            channel=self.channel_name,
            sdp=_description(message.get("sdp"), "offer"),
            media=media,
            call_id=None if message.get("call_id") is None else _call_id(message),
            ring_timeout=settings.WEBRTC_RING_TIMEOUT,
        )
        call_id = str(outcome.call.pk)
        if outcome.call.is_active:
            self.routes[call_id] = ("group", selectors.user_group(callee_id))
            self.ring_timers[call_id] = spawn(self._ring_timeout(outcome.call.pk))
        await self._deliver(outcome.deliveries, ref=message.get("id"))

    async def on_call_answer(self, message: dict[str, Any]) -> None:
        outcome = await database_sync_to_async(services.call_answer)(
            user=self.user,
            call_id=_call_id(message),
            channel=self.channel_name,
            sdp=_description(message.get("sdp"), "answer"),
        )
        self.routes[str(outcome.call.pk)] = ("channel", outcome.call.caller_channel)
        await self._deliver(outcome.deliveries)

    async def on_call_resume(self, message: dict[str, Any]) -> None:
        outcome = await database_sync_to_async(services.call_resume)(
            user=self.user, call_id=_call_id(message), channel=self.channel_name
        )
        call = outcome.call
        if call.state == CallState.RINGING:
            route = ("group", selectors.user_group(call.callee_id))
        elif call.caller_id == self.user.pk:
            route = ("channel", call.callee_channel)
        else:
            route = ("channel", call.caller_channel)
        self.routes[str(call.pk)] = route
        await self._deliver(outcome.deliveries, ref=message.get("id"))

    async def on_call_reject(self, message: dict[str, Any]) -> None:
        await self._finish(services.call_reject, message)

    async def on_call_cancel(self, message: dict[str, Any]) -> None:
        await self._finish(services.call_cancel, message)

    async def on_call_hangup(self, message: dict[str, Any]) -> None:
        reason = message.get("reason", "hangup")
        await self._finish(
            services.call_hangup,
            message,
            reason=reason if isinstance(reason, str) else "hangup",
        )

    async def _finish(
        self,
        service: Callable[..., services.Outcome],
        message: dict[str, Any],
        **kw: Any,
    ) -> None:
        outcome = await database_sync_to_async(service)(
            user=self.user, call_id=_call_id(message), channel=self.channel_name, **kw
        )
        self._forget(str(outcome.call.pk))
        await self._deliver(outcome.deliveries)

    async def on_call_candidate(self, message: dict[str, Any]) -> None:
        candidate = message.get("candidate")
        # null, or an empty candidate string, is end-of-candidates.
        if candidate is not None and not isinstance(candidate, dict):
            raise BadMessage('"candidate" must be an RTCIceCandidateInit or null.')
        await self._relay(message, {"candidate": candidate})

    async def on_call_negotiate(self, message: dict[str, Any]) -> None:
        await self._relay(message, {"sdp": _description(message.get("sdp"))})

    async def _relay(self, message: dict[str, Any], payload: dict[str, Any]) -> None:
        call_id = _call_id(message)
        route = self.routes.get(str(call_id))
        if route is None:
            # Not a call of this device: the database says why.
            route = await database_sync_to_async(selectors.call_peer_route)(
                user_id=self.user.pk,
                call_id=call_id,
                channel=self.channel_name,
            )
        kind, name = route
        frame = {"type": message["type"], "call_id": str(call_id), **payload}
        event = {"type": "signal.deliver", "frame": frame}
        if kind == "channel":
            try:
                await self.channel_layer.send(name, event)
            except LAYER_ERRORS as error:
                # The peer's process is not keeping up; a lost candidate is
                # survivable, a crashed sender is not.
                logger.warning("relay to %s dropped: %r", name, error)
                raise PeerUnreachable() from None
        else:
            await self.channel_layer.group_send(name, event)

    # Timers ------------------------------------------------------------------

    async def _ring_timeout(self, call_id: uuid.UUID) -> None:
        await asyncio.sleep(settings.WEBRTC_RING_TIMEOUT)
        # Delivering ends the call on this device too, which must not cancel
        # this task halfway through.
        self.ring_timers.pop(str(call_id), None)
        outcome = await database_sync_to_async(services.call_expire)(call_id=call_id)
        if outcome is not None:
            await self._deliver(outcome.deliveries)

    async def _device_gone_after_grace(self) -> None:
        await asyncio.sleep(settings.WEBRTC_DISCONNECT_GRACE)
        deliveries = await database_sync_to_async(services.call_device_gone)(
            channel=self.channel_name
        )
        await self._deliver(deliveries)

    # Outgoing frames -----------------------------------------------------------

    async def _deliver(
        self, deliveries: list[services.Delivery], ref: Any = None
    ) -> None:
        for delivery in deliveries:
            frame = dict(delivery.frame)
            if ref is not None and delivery.channel == self.channel_name:
                frame["ref"] = ref
            event = {
                "type": "signal.deliver",
                "frame": frame,
                "exclude": delivery.exclude,
                "route_channel": delivery.route_channel,
            }
            if delivery.channel:
                try:
                    await self.channel_layer.send(delivery.channel, event)
                except LAYER_ERRORS:
                    logger.warning("channel full, frame dropped: %s", frame["type"])
            elif delivery.group:
                await self.channel_layer.group_send(delivery.group, event)

    async def signal_deliver(self, event: dict[str, Any]) -> None:
        """A frame from the channel layer for this device."""
        if event.get("exclude") == self.channel_name or not self.accepted:
            return
        frame = event["frame"]
        route = event.get("route_channel")
        call_id = frame.get("call_id", "")
        if route == "":
            self._forget(call_id)
        elif route and call_id in self.routes:
            self.routes[call_id] = ("channel", route)
            self._stop_ring_timer(call_id)
        await self.send_json(frame)

    def _forget(self, call_id: str) -> None:
        self.routes.pop(call_id, None)
        self._stop_ring_timer(call_id)

    def _stop_ring_timer(self, call_id: str) -> None:
        timer = self.ring_timers.pop(call_id, None)
        if timer is not None:
            timer.cancel()
