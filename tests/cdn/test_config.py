"""CDN configuration rules: an enabled CDN that cannot sign stops every process."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.platform.test_pure import raw
from tests.platform.test_settings import run_manage
from veza import config

KEY_FILE = str(Path(__file__).with_name("cloudfront-test-key.pem"))

BUNNY = {
    "cdn_enabled": True,
    "cdn_provider": "bunny",
    "cdn_base_url": "https://veza.b-cdn.net",
    "cdn_security_key": "k",
}


def ids(**overrides) -> list[str]:
    return [p.id for p in config.resolve(raw(**overrides)).problems]


def test_a_disabled_cdn_has_no_rules():
    assert ids(cdn_enabled=False, cdn_provider="akamai", cdn_fallback="x") == []


@pytest.mark.parametrize(
    "overrides",
    [
        BUNNY,
        {**BUNNY, "cdn_provider": "cloudflare"},
        {
            "cdn_enabled": True,
            "cdn_provider": "cloudfront",
            "cdn_base_url": "https://d111111abcdef8.cloudfront.net/",
            "cdn_key_pair_id": "K2JCJMDEHXQW5F",
            "cdn_private_key_file": KEY_FILE,
        },
        {
            "cdn_enabled": True,
            "cdn_provider": "r2",
            "cdn_r2_account_id": "acc",
            "cdn_r2_access_key_id": "AK",
            "cdn_r2_secret_access_key": "SK",
            "cdn_r2_bucket": "media",
        },
    ],
)
def test_a_complete_configuration_passes(overrides):
    assert ids(**overrides) == []


@pytest.mark.parametrize("provider", ["bunny", "cloudflare"])
def test_an_empty_key_is_fatal_in_every_environment(provider):
    resolved = config.resolve(
        raw(**{**BUNNY, "cdn_provider": provider, "cdn_security_key": ""})
    )
    assert [p.id for p in resolved.problems] == ["veza.E011"]
    problem = resolved.problems[0]
    assert problem.variable == "CDN_SECURITY_KEY"
    for env in config.ENVIRONMENTS:
        assert config.is_fatal(problem, veza_env=env)


@pytest.mark.parametrize(
    ("overrides", "rule", "variable"),
    [
        ({"cdn_provider": "akamai"}, "veza.E010", "CDN_PROVIDER"),
        ({"cdn_base_url": ""}, "veza.E014", "CDN_BASE_URL"),
        ({"cdn_base_url": "veza.b-cdn.net"}, "veza.E014", "CDN_BASE_URL"),
        ({"cdn_base_url": "https://x.example/media"}, "veza.E014", "CDN_BASE_URL"),
        ({"cdn_bunny_token_scheme": "md5"}, "veza.E015", "CDN_BUNNY_TOKEN_SCHEME"),
        ({"cdn_token_ttl": 0}, "veza.E017", "CDN_TOKEN_TTL"),
        ({"cdn_token_ttl": 604801}, "veza.E017", "CDN_TOKEN_TTL"),
        ({"cdn_fallback": "s3"}, "veza.E018", "CDN_FALLBACK"),
        (
            {"cdn_provider": "cloudflare", "cdn_cloudflare_mac_encoding": "hex"},
            "veza.E016",
            "CDN_CLOUDFLARE_MAC_ENCODING",
        ),
        (
            {"cdn_provider": "cloudfront"},
            "veza.E012",
            "CDN_KEY_PAIR_ID, CDN_PRIVATE_KEY_FILE",
        ),
        (
            {
                "cdn_provider": "cloudfront",
                "cdn_key_pair_id": "K",
                "cdn_private_key_file": "/nonexistent/key.pem",
            },
            "veza.E012",
            "CDN_PRIVATE_KEY_FILE",
        ),
        (
            {"cdn_provider": "r2", "cdn_base_url": "", "cdn_r2_bucket": "b"},
            "veza.E013",
            "CDN_R2_ACCOUNT_ID, CDN_R2_ACCESS_KEY_ID, CDN_R2_SECRET_ACCESS_KEY",
        ),
    ],
)
def test_each_rule_names_its_variable(overrides, rule, variable):
    problems = config.resolve(raw(**{**BUNNY, **overrides})).problems
    assert [p.id for p in problems] == [rule]
    assert problems[0].variable == variable
    assert problems[0].fatal_everywhere


@pytest.mark.parametrize("veza_env", ["development", "staging"])
def test_cdn_enabled_without_a_key_stops_the_process_outside_production(
    tmp_path, veza_env
):
    result = run_manage(
        "check",
        VEZA_VAR_DIR=str(tmp_path / "var"),
        VEZA_ENV=veza_env,
        CDN_ENABLED="true",
        CDN_BASE_URL="https://veza.b-cdn.net",
        CDN_SECURITY_KEY="",
    )
    assert result.returncode != 0
    assert "veza.E011 CDN_SECURITY_KEY" in result.stderr


def test_cdn_enabled_with_a_key_starts(tmp_path):
    result = run_manage(
        "check",
        VEZA_VAR_DIR=str(tmp_path / "var"),
        CDN_ENABLED="true",
        CDN_BASE_URL="https://veza.b-cdn.net",
        CDN_SECURITY_KEY="zone-key",
    )
    assert result.returncode == 0, result.stderr
