"""ICE configuration: the whole STUN/TURN matrix, TURN REST credentials, limits."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest
from django.core.cache import cache
from django.urls import reverse

from veza import config
from webrtc.ice import turn_rest_credential

pytestmark = pytest.mark.django_db

URL = "/api/v1/config/webrtc"
TURN = ["turn:turn.example:3478?transport=udp", "turns:turn.example:443?transport=tcp"]


@pytest.fixture(autouse=True)
def _no_webrtc_config(settings):
    settings.WEBRTC_STUN_URLS = []
    settings.WEBRTC_TURN_URLS = []
    settings.WEBRTC_TURN_USERNAME = ""
    settings.WEBRTC_TURN_CREDENTIAL = ""
    settings.WEBRTC_TURN_SECRETS = []
    settings.WEBRTC_TURN_TTL = 3600
    settings.WEBRTC_TURN_ALLOW_ANONYMOUS = False
    settings.WEBRTC_CONFIG_RATE = "1000/min"


def expected_credential(secret: str, username: str) -> str:
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def test_the_route_is_the_documented_path():
    assert reverse("webrtc-config") == URL


def test_nothing_set_gives_no_servers(api_client, auth_client):
    for client in (api_client, auth_client):
        response = client.get(URL)
        assert response.status_code == 200
        assert response.json() == {"iceServers": [], "hasTurn": False, "ttl": None}
        assert response["Cache-Control"] == "no-store"


def test_stun_only_goes_to_everyone(settings, api_client, auth_client):
    settings.WEBRTC_STUN_URLS = ["stun:stun1.example:3478", "stun:stun2.example"]
    for client in (api_client, auth_client):
        assert client.get(URL).json() == {
            "iceServers": [{"urls": ["stun:stun1.example:3478", "stun:stun2.example"]}],
            "hasTurn": False,
            "ttl": None,
        }


def test_full_static_turn_goes_to_authenticated_users_only(
    settings, api_client, auth_client
):
    settings.WEBRTC_STUN_URLS = ["stun:stun.example:3478"]
    settings.WEBRTC_TURN_URLS = TURN
    settings.WEBRTC_TURN_USERNAME = "veza"
    settings.WEBRTC_TURN_CREDENTIAL = "static-pass"
    body = auth_client.get(URL).json()
    assert body == {
        "iceServers": [
            {"urls": ["stun:stun.example:3478"]},
            {"urls": TURN, "username": "veza", "credential": "static-pass"},
        ],
        "hasTurn": True,
        "ttl": None,
    }
    anonymous = api_client.get(URL).json()
    assert anonymous == {
        "iceServers": [{"urls": ["stun:stun.example:3478"]}],
        "hasTurn": False,
        "ttl": None,
    }


@pytest.mark.parametrize(
    "half",
    [
        {"WEBRTC_TURN_URLS": TURN},
        {"WEBRTC_TURN_URLS": TURN, "WEBRTC_TURN_USERNAME": "veza"},
        {"WEBRTC_TURN_URLS": TURN, "WEBRTC_TURN_CREDENTIAL": "pass"},
        {"WEBRTC_TURN_USERNAME": "veza", "WEBRTC_TURN_CREDENTIAL": "pass"},
        {"WEBRTC_TURN_SECRETS": ["s3cret"]},
    ],
    ids=[
        "urls-only",
        "urls-username",
        "urls-credential",
        "credentials-only",
        "secret-only",
    ],
)
def test_half_configured_turn_omits_the_turn_block(settings, auth_client, half):
    settings.WEBRTC_STUN_URLS = ["stun:stun.example:3478"]
    for name, value in half.items():
        setattr(settings, name, value)
    assert auth_client.get(URL).json() == {
        "iceServers": [{"urls": ["stun:stun.example:3478"]}],
        "hasTurn": False,
        "ttl": None,
    }


def test_secret_mode_mints_turn_rest_credentials_bound_to_the_user(
    settings, auth_client, user
):
    settings.WEBRTC_TURN_URLS = TURN
    settings.WEBRTC_TURN_SECRETS = ["s3cret"]
    settings.WEBRTC_TURN_TTL = 600
    before = int(time.time())
    body = auth_client.get(URL).json()
    after = int(time.time())
    assert body["hasTurn"] is True
    assert body["ttl"] == 600
    (server,) = body["iceServers"]
    assert server["urls"] == TURN
    expiry, user_id = server["username"].split(":")
    assert user_id == str(user.pk)
    assert before + 600 <= int(expiry) <= after + 600
    assert server["credential"] == expected_credential("s3cret", server["username"])
    # Standard base64 of a 20-byte digest, padded.
    assert len(server["credential"]) == 28
    assert server["credential"].endswith("=")


def test_several_secrets_sign_with_the_first(settings, auth_client):
    settings.WEBRTC_TURN_URLS = TURN
    settings.WEBRTC_TURN_SECRETS = ["new-secret", "old-secret"]
    server = auth_client.get(URL).json()["iceServers"][0]
    assert server["credential"] == expected_credential("new-secret", server["username"])
    assert server["credential"] != expected_credential("old-secret", server["username"])


def test_secret_mode_wins_over_static_credentials(settings, auth_client):
    settings.WEBRTC_TURN_URLS = TURN
    settings.WEBRTC_TURN_SECRETS = ["s3cret"]
    settings.WEBRTC_TURN_USERNAME = "veza"
    settings.WEBRTC_TURN_CREDENTIAL = "static-pass"
    server = auth_client.get(URL).json()["iceServers"][0]
    assert server["username"] != "veza"
    assert server["credential"] == expected_credential("s3cret", server["username"])


def test_anonymous_callers_get_stun_only_in_secret_mode(settings, api_client):
    settings.WEBRTC_STUN_URLS = ["stun:stun.example:3478"]
    settings.WEBRTC_TURN_URLS = TURN
    settings.WEBRTC_TURN_SECRETS = ["s3cret"]
    assert api_client.get(URL).json() == {
        "iceServers": [{"urls": ["stun:stun.example:3478"]}],
        "hasTurn": False,
        "ttl": None,
    }


def test_anonymous_turn_when_allowed_gets_random_usernames(settings, api_client):
    settings.WEBRTC_TURN_URLS = TURN
    settings.WEBRTC_TURN_SECRETS = ["s3cret"]
    settings.WEBRTC_TURN_ALLOW_ANONYMOUS = True
    first = api_client.get(URL).json()["iceServers"][0]
    second = api_client.get(URL).json()["iceServers"][0]
    assert first["username"].split(":")[1].startswith("anon-")
    assert first["username"] != second["username"]
    assert first["credential"] == expected_credential("s3cret", first["username"])


def test_bad_urls_are_left_out(settings, auth_client):
    settings.WEBRTC_STUN_URLS = ["stun:ok.example", "http://bad.example"]
    settings.WEBRTC_TURN_URLS = ["bad.example:3478"]
    settings.WEBRTC_TURN_SECRETS = ["s3cret"]
    assert auth_client.get(URL).json() == {
        "iceServers": [{"urls": ["stun:ok.example"]}],
        "hasTurn": False,
        "ttl": None,
    }


def test_the_endpoint_is_rate_limited_per_user(
    settings, auth_client, other_client, user, other_user
):
    settings.WEBRTC_CONFIG_RATE = "3/min"
    # Earlier tests may have left request history under the same user ids.
    cache.delete_many([f"throttle_webrtc_ice_user-{u.pk}" for u in (user, other_user)])
    codes = [auth_client.get(URL).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    body = auth_client.get(URL).json()
    assert body["error"]["code"] == "throttled"
    # Another user has a budget of their own.
    assert other_client.get(URL).status_code == 200


def test_turn_rest_credential_matches_the_draft_algorithm():
    username, credential = turn_rest_credential(
        secret="north", user_id="42", ttl=86400, now=1_700_000_000
    )
    assert username == "1700086400:42"
    assert credential == expected_credential("north", "1700086400:42")


# Configuration rules (pure) ------------------------------------------------


def raw(**webrtc) -> config.RawConfig:
    return config.RawConfig(
        veza_env="development",
        debug=True,
        allowed_hosts=[],
        secret_key="x" * 40,
        track_storage_backend="local",
        s3_enabled=False,
        s3_bucket="",
        s3_access_key="",
        s3_secret_key="",
        **webrtc,
    )


def ids(raw_config: config.RawConfig) -> list[str]:
    return [p.id for p in config.resolve(raw_config).problems]


@pytest.mark.parametrize(
    ("webrtc", "expected"),
    [
        ({}, []),
        ({"webrtc_stun_urls": ("stun:s.example",)}, []),
        ({"webrtc_turn_urls": ("turn:t.example",), "webrtc_turn_secrets": ("k",)}, []),
        (
            {
                "webrtc_turn_urls": ("turn:t.example",),
                "webrtc_turn_username": "u",
                "webrtc_turn_credential": "p",
            },
            [],
        ),
        ({"webrtc_turn_urls": ("turn:t.example",)}, ["veza.E030"]),
        ({"webrtc_turn_secrets": ("k",)}, ["veza.E030"]),
        ({"webrtc_turn_username": "u", "webrtc_turn_credential": "p"}, ["veza.E030"]),
        (
            {"webrtc_turn_urls": ("turn:t.example",), "webrtc_turn_username": "u"},
            ["veza.E030"],
        ),
        (
            {
                "webrtc_turn_urls": ("turn:t.example",),
                "webrtc_turn_secrets": ("k",),
                "webrtc_turn_username": "u",
            },
            ["veza.E031"],
        ),
        ({"webrtc_turn_ttl": 10}, ["veza.E032"]),
        ({"webrtc_turn_ttl": 86401}, ["veza.E032"]),
        ({"webrtc_ring_timeout": 0}, ["veza.E033"]),
        ({"webrtc_stun_urls": ("stun.example:3478",)}, ["veza.E034"]),
        (
            {"webrtc_turn_urls": ("http://t.example",), "webrtc_turn_secrets": ("k",)},
            ["veza.E030", "veza.E034"],
        ),
    ],
)
def test_webrtc_configuration_rules(webrtc, expected):
    assert ids(raw(**webrtc)) == expected


def test_half_configured_turn_is_a_warning_outside_production_and_fatal_in_it():
    (problem,) = config.resolve(raw(webrtc_turn_urls=("turn:t.example",))).problems
    assert problem.variable.startswith("WEBRTC_TURN_SECRET")
    assert not config.is_fatal(problem, veza_env="development")
    assert config.is_fatal(problem, veza_env="production")


def test_out_of_range_values_are_clamped():
    resolved = config.resolve(raw(webrtc_turn_ttl=5, webrtc_ring_timeout=10_000))
    assert resolved.webrtc_turn_ttl == 60
    assert resolved.webrtc_ring_timeout == 600
