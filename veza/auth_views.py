"""API tokens: username and password for a DRF token; list and revoke them."""

from __future__ import annotations

from typing import Any, cast

from django.contrib.auth import authenticate
from django.contrib.auth.signals import user_logged_in
from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.authtoken.models import Token
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle
from rest_framework.views import APIView

from veza import selectors, services
from veza.errors import InvalidCredentials
from veza.openapi import error_responses

# DRF refuses NUL in any text field (PostgreSQL cannot store it); the pattern
# says so in the schema.
_NO_NUL = RegexValidator(r"^[^\x00]*$", message="NUL characters are not allowed.")


class TokenInputSerializer(serializers.Serializer[None]):
    # Bounded: a username is at most 150 characters (Django's User), and a
    # password is hashed with PBKDF2, whose cost grows with its length.
    username = serializers.CharField(
        max_length=150, trim_whitespace=False, validators=[_NO_NUL]
    )
    password = serializers.CharField(
        max_length=1024,
        trim_whitespace=False,
        style={"input_type": "password"},
        validators=[_NO_NUL],
    )


class TokenOutputSerializer(serializers.Serializer[None]):
    token = serializers.CharField()


class TokenInfoOutputSerializer(serializers.Serializer[Any]):
    created = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    current = serializers.BooleanField(help_text="The token of this request.")


class LoginThrottle(AnonRateThrottle):
    rate = "30/min"


class AuthTokenView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list[type] = []
    throttle_classes = [LoginThrottle]

    @extend_schema(
        request=TokenInputSerializer,
        responses={200: TokenOutputSerializer, **error_responses(400, 401, 415, 429)},
        operation_id="auth_token",
        summary="Get an API token",
        description="Your API token, for `Authorization: Token <token>`; the "
        "same token on every call. 401 `invalid_credentials` when no active "
        "account has this username and password; 429 `throttled` after 30 "
        "tries a minute from one address, 429 `account_locked` after 10 "
        "failures in a row for one account or address (until the cool-off).",
    )
    def post(self, request: Request) -> Response:
        data = TokenInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        # django-axes counts failures here and refuses a locked-out account
        # or address (its middleware then answers 429 account_locked).
        user = authenticate(request._request, **data.validated_data)
        if user is None:
            raise InvalidCredentials()
        # A login, as the admin's: resets the failure count, sets last_login.
        user_logged_in.send(sender=type(user), request=request._request, user=user)
        return Response({"token": services.token_issue(user=user).key})


class TokenListView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        responses={200: TokenInfoOutputSerializer(many=True), **error_responses(401)},
        operation_id="auth_tokens_list",
        summary="List your API tokens",
        description="Your API tokens (one: the token endpoint gives the same "
        "token until it expires or is revoked), with their expiry.",
    )
    def get(self, request: Request) -> Response:
        tokens = selectors.token_list(
            user_id=cast(int, request.user.pk),
            current_key=request.auth.key if isinstance(request.auth, Token) else None,
        )
        return Response(TokenInfoOutputSerializer(tokens, many=True).data)

    @extend_schema(
        request=None,
        responses={204: None, **error_responses(401, 403)},
        operation_id="auth_tokens_revoke",
        summary="Revoke your API tokens",
        description="Sign out every API client of yours: your tokens stop "
        "working at once. 403 is a session caller without the CSRF token.",
    )
    def delete(self, request: Request) -> Response:
        services.tokens_revoke(user_id=cast(int, request.user.pk))
        return Response(status=204)
