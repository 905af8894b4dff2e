"""HTTP API of calls: ICE configuration, websocket tickets, call history."""

from __future__ import annotations

from typing import Any, cast

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from veza.openapi import error_responses
from veza.pagination import NewestFirstPagination, newest_first_page
from webrtc import ice, selectors, tickets
from webrtc.api.serializers import (
    CallOutputSerializer,
    IceConfigOutputSerializer,
    TicketOutputSerializer,
)


class WebrtcRateThrottle(SimpleRateThrottle):
    """WEBRTC_CONFIG_RATE per user, or per IP for anonymous callers."""

    def get_rate(self) -> str:
        return str(settings.WEBRTC_CONFIG_RATE)

    def get_cache_key(self, request: Request, view: Any) -> str:
        user = request.user
        ident = (
            f"user-{user.pk}"
            if user and user.is_authenticated
            else self.get_ident(request)
        )
        return f"throttle_webrtc_{self.scope}_{ident}"


class IceConfigThrottle(WebrtcRateThrottle):
    scope = "ice"


class TicketThrottle(WebrtcRateThrottle):
    scope = "ticket"


class IceConfigView(APIView):
    permission_classes = [AllowAny]
    throttle_classes = [IceConfigThrottle]

    @extend_schema(
        responses={200: IceConfigOutputSerializer, **error_responses(429)},
        operation_id="webrtc_config",
        summary="Get ICE servers",
        description="ICE servers for RTCPeerConnection. TURN servers and "
        "credentials only for authenticated users (unless anonymous TURN is "
        "allowed); `ttl` is the lifetime of TURN REST credentials.",
    )
    def get(self, request: Request) -> Response:
        config = ice.ice_config(user=request.user)
        return Response(config, headers={"Cache-Control": "no-store"})


class CallTicketView(APIView):
    throttle_classes = [TicketThrottle]

    @extend_schema(
        request=None,
        responses={201: TicketOutputSerializer, **error_responses(401, 403, 429)},
        operation_id="calls_ticket",
        summary="Get a signaling ticket",
        description="A one-time ticket for `/ws/calls/?ticket=...`, valid "
        "60 seconds, for API clients without a session cookie. 403 is a "
        "session caller without the CSRF token.",
    )
    def post(self, request: Request) -> Response:
        ticket, ttl = tickets.ticket_issue(user_id=cast(int, request.user.pk))
        return Response(
            {"ticket": ticket, "expires_in": ttl, "url": f"/ws/calls/?ticket={ticket}"},
            status=201,
            headers={"Cache-Control": "no-store"},
        )


class CallListView(APIView):
    # Also what the schema documents the list's pages and parameters by.
    pagination_class = NewestFirstPagination

    @extend_schema(
        responses={200: CallOutputSerializer(many=True), **error_responses(400, 401)},
        operation_id="calls_list",
        summary="List your calls",
        description="Calls you made or received, newest first, a page at a "
        "time. Follow `next` for the following page; 400 `invalid_cursor` for "
        "a cursor the list did not give out.",
    )
    def get(self, request: Request) -> Response:
        calls = selectors.call_list_for_user(user=request.user)
        return newest_first_page(
            request=request, view=self, queryset=calls, serializer=CallOutputSerializer
        )
