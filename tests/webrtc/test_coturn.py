"""Credentials from the endpoint allocate a relay on a real coturn."""

from __future__ import annotations

import time

import pytest

from tests.webrtc.coturn import TURNSERVER, UCLIENT, allocate, start_coturn
from webrtc.ice import turn_rest_credential

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(
        TURNSERVER is None or UCLIENT is None,
        reason="coturn is not installed (apt-get install coturn)",
    ),
]


@pytest.fixture
def coturn(tmp_path):
    server = start_coturn(tmp_path, ["new-secret", "old-secret"])
    yield server
    server.stop()


@pytest.fixture
def turn_settings(settings, coturn):
    settings.WEBRTC_STUN_URLS = []
    settings.WEBRTC_TURN_URLS = [coturn.url]
    settings.WEBRTC_TURN_USERNAME = ""
    settings.WEBRTC_TURN_CREDENTIAL = ""
    settings.WEBRTC_TURN_SECRETS = ["new-secret", "old-secret"]
    settings.WEBRTC_TURN_TTL = 600
    settings.WEBRTC_TURN_ALLOW_ANONYMOUS = False
    settings.WEBRTC_CONFIG_RATE = "1000/min"
    return settings


def test_endpoint_credentials_allocate_a_relay(turn_settings, coturn, auth_client):
    body = auth_client.get("/api/v1/config/webrtc").json()
    assert body["hasTurn"] is True
    (server,) = body["iceServers"]
    assert server["urls"] == [coturn.url]
    ok, output = allocate(coturn, server["username"], server["credential"])
    assert ok, output


def test_a_credential_of_an_older_secret_still_works_during_rotation(coturn):
    username, credential = turn_rest_credential(
        secret="old-secret", user_id="7", ttl=600
    )
    ok, output = allocate(coturn, username, credential)
    assert ok, output


def test_a_wrong_credential_is_refused(turn_settings, coturn, auth_client):
    server = auth_client.get("/api/v1/config/webrtc").json()["iceServers"][0]
    ok, output = allocate(coturn, server["username"], "d3JvbmcgY3JlZGVudGlhbA==")
    assert not ok
    assert "Cannot complete Allocation" in output


def test_a_credential_signed_with_an_unknown_secret_is_refused(coturn):
    username, credential = turn_rest_credential(
        secret="not-configured", user_id="7", ttl=600
    )
    ok, output = allocate(coturn, username, credential)
    assert not ok
    assert "Cannot complete Allocation" in output


def test_an_expired_credential_is_refused(coturn):
    username, credential = turn_rest_credential(
        secret="new-secret", user_id="7", ttl=60, now=time.time() - 3600
    )
    ok, output = allocate(coturn, username, credential)
    assert not ok
    assert "Cannot complete Allocation" in output
