"""API token exchange: username and password for a DRF token."""

from __future__ import annotations

from django.contrib.auth import authenticate
from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.authtoken.models import Token
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle
from rest_framework.views import APIView

from veza.errors import InvalidCredentials
from veza.openapi import error_responses

# DRF refuses NUL in any text field (PostgreSQL cannot store it); the pattern
# says so in the schema.
_NO_NUL = RegexValidator(r"^[^\x00]*$", message="NUL characters are not allowed.")


class TokenInputSerializer(serializers.Serializer[None]):
    username = serializers.CharField(trim_whitespace=False, validators=[_NO_NUL])
    password = serializers.CharField(
        trim_whitespace=False, style={"input_type": "password"}, validators=[_NO_NUL]
    )


class TokenOutputSerializer(serializers.Serializer[None]):
    token = serializers.CharField()


class LoginThrottle(AnonRateThrottle):
    rate = "30/min"


class AuthTokenView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list[type] = []
    throttle_classes = [LoginThrottle]

    @extend_schema(
        request=TokenInputSerializer,
        responses={200: TokenOutputSerializer, **error_responses(400, 401, 429)},
        operation_id="auth_token",
        summary="Get an API token",
        description="Your API token, for `Authorization: Token <token>`; the "
        "same token on every call. 401 `invalid_credentials` when no active "
        "account has this username and password; 429 after too many tries.",
    )
    def post(self, request: Request) -> Response:
        data = TokenInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = authenticate(request._request, **data.validated_data)
        if user is None:
            raise InvalidCredentials()
        token, _ = Token.objects.get_or_create(user=user)
        return Response({"token": token.key})
