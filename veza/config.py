"""Configuration rules: validate raw settings and derive the effective ones."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from urllib.parse import urlsplit

ENVIRONMENTS = ("development", "staging", "production")
STORAGE_BACKENDS = ("local", "s3")
S3_ADDRESSING_STYLES = ("path", "virtual")
S3_CHECKSUM_ALGORITHMS = ("", "sha256")
CDN_PROVIDERS = ("bunny", "cloudflare", "cloudfront", "r2")
CDN_BUNNY_TOKEN_SCHEMES = ("hmac", "sha256")
CDN_CLOUDFLARE_MAC_ENCODINGS = ("base64", "urlsafe")
CDN_FALLBACKS = ("origin", "none")
# SigV4 presigned URLs (R2) live at most 7 days; no token should live longer.
CDN_MAX_TOKEN_TTL = 604800


@dataclass(frozen=True)
class Problem:
    """One violated rule; `id` is the stable system-check ID."""

    id: str
    variable: str
    message: str
    fix: str
    # Some rules cannot fall back safely in any environment.
    fatal_everywhere: bool = False

    def text(self) -> str:
        return f"{self.variable}: {self.message}"


@dataclass(frozen=True)
class RawConfig:
    veza_env: str
    debug: bool
    allowed_hosts: list[str]
    secret_key: str
    track_storage_backend: str
    s3_enabled: bool
    s3_bucket: str
    s3_access_key: str
    s3_secret_key: str
    s3_addressing_style: str = "path"
    s3_checksum_algorithm: str = ""
    cdn_enabled: bool = False
    cdn_provider: str = "bunny"
    cdn_base_url: str = ""
    cdn_security_key: str = ""
    cdn_token_ttl: int = 3600
    cdn_fallback: str = "origin"
    cdn_bunny_token_scheme: str = "hmac"  # noqa: S105 (a scheme name)
    cdn_cloudflare_mac_encoding: str = "base64"
    cdn_key_pair_id: str = ""
    cdn_private_key_file: str = ""
    cdn_r2_account_id: str = ""
    cdn_r2_access_key_id: str = ""
    cdn_r2_secret_access_key: str = ""
    cdn_r2_bucket: str = ""
    webrtc_stun_urls: tuple[str, ...] = ()
    webrtc_turn_urls: tuple[str, ...] = ()
    webrtc_turn_username: str = ""
    webrtc_turn_credential: str = ""
    webrtc_turn_secrets: tuple[str, ...] = ()
    webrtc_turn_ttl: int = 3600
    webrtc_ring_timeout: int = 45
    redis_url: str = ""
    redis_sentinels: tuple[str, ...] = ()
    redis_sentinel_master: str = ""


@dataclass(frozen=True)
class ResolvedConfig:
    track_storage_backend: str
    s3_addressing_style: str = "path"
    s3_checksum_algorithm: str = ""
    problems: list[Problem] = field(default_factory=list)
    webrtc_turn_ttl: int = 3600
    webrtc_ring_timeout: int = 45
    # (host, port) of each Sentinel; empty: Redis by REDIS_URL, or none.
    redis_sentinels: tuple[tuple[str, int], ...] = ()


def resolve(raw: RawConfig) -> ResolvedConfig:
    """Check every rule; outside production, fall back where a rule failed."""
    problems: list[Problem] = []
    if raw.veza_env not in ENVIRONMENTS:
        problems.append(
            Problem(
                id="veza.E001",
                variable="VEZA_ENV",
                message=f"{raw.veza_env!r} is not a known environment.",
                fix="Set VEZA_ENV to development, staging or production.",
                fatal_everywhere=True,
            )
        )

    backend = raw.track_storage_backend
    if backend not in STORAGE_BACKENDS:
        problems.append(
            Problem(
                id="veza.E002",
                variable="TRACK_STORAGE_BACKEND",
                message=f"{backend!r} is not a storage backend.",
                fix="Set TRACK_STORAGE_BACKEND to exactly 'local' or 's3' "
                "(lower case, no spaces).",
            )
        )
        backend = "local"
    elif backend == "s3" and not raw.s3_enabled:
        problems.append(
            Problem(
                id="veza.E003",
                variable="AWS_S3_ENABLED",
                message="TRACK_STORAGE_BACKEND is 's3' but S3 is not enabled.",
                fix="Set AWS_S3_ENABLED=true and configure the bucket, or set "
                "TRACK_STORAGE_BACKEND=local.",
            )
        )
        backend = "local"
    if raw.s3_enabled or raw.track_storage_backend == "s3":
        missing = s3_settings_missing(
            bucket=raw.s3_bucket,
            access_key=raw.s3_access_key,
            secret_key=raw.s3_secret_key,
        )
        if missing:
            problems.append(
                Problem(
                    id="veza.E004",
                    variable=", ".join(missing),
                    message="S3 is enabled but not configured.",
                    fix="Set the bucket name and the access key pair, or turn "
                    "S3 off with AWS_S3_ENABLED=false.",
                )
            )
            backend = "local"

    addressing_style = raw.s3_addressing_style
    if addressing_style not in S3_ADDRESSING_STYLES:
        problems.append(
            Problem(
                id="veza.E008",
                variable="AWS_S3_ADDRESSING_STYLE",
                message=f"{addressing_style!r} is not an addressing style.",
                fix="Set AWS_S3_ADDRESSING_STYLE to path (MinIO and most "
                "S3-compatible servers) or virtual (AWS).",
            )
        )
        addressing_style = "path"
    checksum_algorithm = raw.s3_checksum_algorithm.lower()
    if checksum_algorithm not in S3_CHECKSUM_ALGORITHMS:
        problems.append(
            Problem(
                id="veza.E009",
                variable="AWS_S3_CHECKSUM_ALGORITHM",
                message=f"{raw.s3_checksum_algorithm!r} is not a checksum "
                "algorithm the transfer engine sends.",
                fix="Leave AWS_S3_CHECKSUM_ALGORITHM empty, or set it to sha256 "
                "where the server verifies x-amz-checksum-sha256.",
            )
        )
        checksum_algorithm = ""

    # Staging runs as production does: the same rules, as warnings there.
    if raw.veza_env in ("staging", "production"):
        if raw.debug:
            problems.append(
                Problem(
                    id="veza.E005",
                    variable="DJANGO_DEBUG",
                    message=f"DEBUG is on in {raw.veza_env}.",
                    fix="Set DJANGO_DEBUG=false.",
                )
            )
        if not raw.allowed_hosts or "*" in raw.allowed_hosts:
            problems.append(
                Problem(
                    id="veza.E006",
                    variable="DJANGO_ALLOWED_HOSTS",
                    message="ALLOWED_HOSTS is empty or `*` (any Host header, "
                    "so any host name in links the site writes).",
                    fix="Set DJANGO_ALLOWED_HOSTS to the comma-separated host "
                    "names the site answers on.",
                )
            )
        if not raw.redis_url and not raw.redis_sentinels:
            problems.append(
                Problem(
                    id="veza.E020",
                    variable="REDIS_URL",
                    message="No shared cache: each process would keep its own "
                    "copy of access decisions (a track made private, a "
                    "takedown, a revoked token) for up to a minute, and its own "
                    "channel layer, so calls could not cross processes.",
                    fix="Set REDIS_URL (e.g. redis://127.0.0.1:6379/0), or "
                    "REDIS_SENTINELS and REDIS_SENTINEL_MASTER.",
                )
            )
        if _weak_secret(raw.secret_key):
            problems.append(
                Problem(
                    id="veza.E007",
                    variable="DJANGO_SECRET_KEY",
                    message="SECRET_KEY is missing, shorter than 32 characters, "
                    "of fewer than 5 different characters, or Django's insecure "
                    "sample.",
                    fix="Set DJANGO_SECRET_KEY to a long random value, e.g. "
                    "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`.",
                )
            )
    if raw.cdn_enabled:
        problems.extend(cdn_problems(raw))
    problems.extend(webrtc_problems(raw))
    sentinels, redis_found = redis_sentinels(raw)
    problems.extend(redis_found)
    return ResolvedConfig(
        track_storage_backend=backend,
        s3_addressing_style=addressing_style,
        s3_checksum_algorithm=checksum_algorithm,
        problems=problems,
        # Out-of-range values (rules E032, E033) are clamped into range.
        webrtc_turn_ttl=min(max(raw.webrtc_turn_ttl, 60), WEBRTC_MAX_TURN_TTL),
        webrtc_ring_timeout=min(max(raw.webrtc_ring_timeout, 5), 600),
        redis_sentinels=sentinels,
    )


def _cdn_problem(variable: str, message: str, fix: str, id: str) -> Problem:
    # A CDN that is on but cannot sign must never degrade to unsigned URLs.
    return Problem(
        id=id, variable=variable, message=message, fix=fix, fatal_everywhere=True
    )


def _is_base_url(url: str) -> bool:
    parts = urlsplit(url)
    return (
        parts.scheme in ("http", "https")
        and bool(parts.netloc)
        and parts.path in ("", "/")
        and not parts.query
        and not parts.fragment
    )


def cdn_problems(raw: RawConfig) -> list[Problem]:
    """The rules of an enabled CDN; each is fatal in every environment."""
    problems: list[Problem] = []
    provider = raw.cdn_provider
    if provider not in CDN_PROVIDERS:
        return [
            _cdn_problem(
                "CDN_PROVIDER",
                f"{provider!r} is not a CDN provider.",
                "Set CDN_PROVIDER to bunny, cloudflare, cloudfront or r2, or "
                "CDN_ENABLED=false.",
                "veza.E010",
            )
        ]
    if provider in ("bunny", "cloudflare") and not raw.cdn_security_key:
        problems.append(
            _cdn_problem(
                "CDN_SECURITY_KEY",
                f"CDN_ENABLED is true but the {provider} signing key is empty.",
                "Copy the token authentication key of the zone into "
                "CDN_SECURITY_KEY, or set CDN_ENABLED=false.",
                "veza.E011",
            )
        )
    if provider == "cloudfront":
        missing = [] if raw.cdn_key_pair_id else ["CDN_KEY_PAIR_ID"]
        key_file = raw.cdn_private_key_file
        if not (key_file and os.path.isfile(key_file) and os.access(key_file, os.R_OK)):
            missing.append("CDN_PRIVATE_KEY_FILE")
        if missing:
            problems.append(
                _cdn_problem(
                    ", ".join(missing),
                    "CDN_ENABLED is true but the CloudFront key pair is missing "
                    "or its private key file is not readable.",
                    "Set CDN_KEY_PAIR_ID to the public key ID of the trusted key "
                    "group and CDN_PRIVATE_KEY_FILE to the PEM private key.",
                    "veza.E012",
                )
            )
    if provider == "r2":
        missing = [
            name
            for name, value in (
                ("CDN_R2_ACCESS_KEY_ID", raw.cdn_r2_access_key_id),
                ("CDN_R2_SECRET_ACCESS_KEY", raw.cdn_r2_secret_access_key),
                ("CDN_R2_BUCKET", raw.cdn_r2_bucket),
            )
            if not value
        ]
        if not raw.cdn_r2_account_id and not raw.cdn_base_url:
            missing.insert(0, "CDN_R2_ACCOUNT_ID")
        if missing:
            problems.append(
                _cdn_problem(
                    ", ".join(missing),
                    "CDN_ENABLED is true but R2 is not fully configured.",
                    "Set the R2 account ID (or CDN_BASE_URL to the S3 API "
                    "endpoint), the R2 API token key pair and the bucket.",
                    "veza.E013",
                )
            )
    # R2 can derive its endpoint from the account ID (rule E013).
    if not _is_base_url(raw.cdn_base_url) if raw.cdn_base_url else provider != "r2":
        problems.append(
            _cdn_problem(
                "CDN_BASE_URL",
                f"{raw.cdn_base_url!r} is not a CDN base URL.",
                "Set CDN_BASE_URL to the scheme and host of the CDN, e.g. "
                "https://veza.b-cdn.net (no path).",
                "veza.E014",
            )
        )
    if provider == "bunny" and raw.cdn_bunny_token_scheme not in (
        CDN_BUNNY_TOKEN_SCHEMES
    ):
        problems.append(
            _cdn_problem(
                "CDN_BUNNY_TOKEN_SCHEME",
                f"{raw.cdn_bunny_token_scheme!r} is not a Bunny token scheme.",
                "Set CDN_BUNNY_TOKEN_SCHEME to hmac (current) or sha256 (legacy).",
                "veza.E015",
            )
        )
    if provider == "cloudflare" and raw.cdn_cloudflare_mac_encoding not in (
        CDN_CLOUDFLARE_MAC_ENCODINGS
    ):
        problems.append(
            _cdn_problem(
                "CDN_CLOUDFLARE_MAC_ENCODING",
                f"{raw.cdn_cloudflare_mac_encoding!r} is not a MAC encoding.",
                "Set CDN_CLOUDFLARE_MAC_ENCODING to base64 (rule without flags) "
                'or urlsafe (rule with the "s" flag).',
                "veza.E016",
            )
        )
    if not 1 <= raw.cdn_token_ttl <= CDN_MAX_TOKEN_TTL:
        problems.append(
            _cdn_problem(
                "CDN_TOKEN_TTL",
                f"{raw.cdn_token_ttl} is not between 1 and {CDN_MAX_TOKEN_TTL}.",
                "Set CDN_TOKEN_TTL to a lifetime in seconds, at most 7 days.",
                "veza.E017",
            )
        )
    if raw.cdn_fallback not in CDN_FALLBACKS:
        problems.append(
            _cdn_problem(
                "CDN_FALLBACK",
                f"{raw.cdn_fallback!r} is not a fallback mode.",
                "Set CDN_FALLBACK to origin (S3 presigned or origin URL when "
                "signing fails) or none (answer 503).",
                "veza.E018",
            )
        )
    return problems


TURN_SCHEMES = ("turn:", "turns:")
STUN_SCHEMES = ("stun:", "stuns:")
# coturn checks a REST credential's expiry only when an allocation starts,
# so a long TTL only widens the window for a leaked credential.
WEBRTC_MAX_TURN_TTL = 86400


def webrtc_turn_mode(
    *,
    urls: tuple[str, ...] | list[str],
    username: str,
    credential: str,
    secrets: tuple[str, ...] | list[str],
) -> str | None:
    """How TURN credentials are made: "secret", "static", or None for no TURN.

    Half a configuration (URLs without credentials, credentials without URLs)
    means no TURN at all: clients then fall back to STUN cleanly instead of
    failing with 401s at call time.
    """
    if not urls:
        return None
    if any(secrets):
        return "secret"
    if username and credential:
        return "static"
    return None


def webrtc_problems(raw: RawConfig) -> list[Problem]:
    """The WebRTC rules (veza.E030-E039); outside production they fall back."""
    problems: list[Problem] = []
    has_credentials = bool(
        any(raw.webrtc_turn_secrets)
        or raw.webrtc_turn_username
        or raw.webrtc_turn_credential
    )
    # Bad URLs are dropped (rule E034), so they count as no URLs here.
    mode = webrtc_turn_mode(
        urls=[u for u in raw.webrtc_turn_urls if u.startswith(TURN_SCHEMES)],
        username=raw.webrtc_turn_username,
        credential=raw.webrtc_turn_credential,
        secrets=raw.webrtc_turn_secrets,
    )
    if mode is None and (raw.webrtc_turn_urls or has_credentials):
        missing = (
            "WEBRTC_TURN_URLS"
            if not raw.webrtc_turn_urls
            else "WEBRTC_TURN_SECRET or WEBRTC_TURN_USERNAME, WEBRTC_TURN_CREDENTIAL"
        )
        problems.append(
            Problem(
                id="veza.E030",
                variable=missing,
                message="TURN is half configured, so no TURN server is handed "
                "out (STUN only).",
                fix="Set WEBRTC_TURN_URLS together with WEBRTC_TURN_SECRET (REST "
                "credentials) or with both WEBRTC_TURN_USERNAME and "
                "WEBRTC_TURN_CREDENTIAL; or unset all of them.",
            )
        )
    if mode == "secret" and (raw.webrtc_turn_username or raw.webrtc_turn_credential):
        problems.append(
            Problem(
                id="veza.E031",
                variable="WEBRTC_TURN_USERNAME, WEBRTC_TURN_CREDENTIAL",
                message="Both a TURN secret and static credentials are set; the "
                "static credentials are ignored.",
                fix="Keep WEBRTC_TURN_SECRET (coturn use-auth-secret) and unset "
                "the static pair, or the other way round.",
            )
        )
    if not 60 <= raw.webrtc_turn_ttl <= WEBRTC_MAX_TURN_TTL:
        problems.append(
            Problem(
                id="veza.E032",
                variable="WEBRTC_TURN_TTL",
                message=f"{raw.webrtc_turn_ttl} is not between 60 and "
                f"{WEBRTC_MAX_TURN_TTL} seconds.",
                fix="Set WEBRTC_TURN_TTL to the lifetime of TURN REST "
                "credentials, e.g. 3600.",
            )
        )
    if not 5 <= raw.webrtc_ring_timeout <= 600:
        problems.append(
            Problem(
                id="veza.E033",
                variable="WEBRTC_RING_TIMEOUT",
                message=f"{raw.webrtc_ring_timeout} is not between 5 and 600 seconds.",
                fix="Set WEBRTC_RING_TIMEOUT to how long a call rings, e.g. 45.",
            )
        )
    bad = [u for u in raw.webrtc_stun_urls if not u.startswith(STUN_SCHEMES)] + [
        u for u in raw.webrtc_turn_urls if not u.startswith(TURN_SCHEMES)
    ]
    if bad:
        problems.append(
            Problem(
                id="veza.E034",
                variable="WEBRTC_STUN_URLS, WEBRTC_TURN_URLS",
                message=f"{', '.join(bad)}: not stun:/stuns: or turn:/turns: URLs.",
                fix="List STUN servers as stun:host:port and TURN servers as "
                "turn:host:port?transport=udp or turns:host:443?transport=tcp.",
            )
        )
    return problems


def redis_sentinels(
    raw: RawConfig,
) -> tuple[tuple[tuple[str, int], ...], list[Problem]]:
    """The Sentinels to ask for the Redis master (rules veza.E021-E023);
    empty when they cannot be used, and the rules they broke."""
    if not raw.redis_sentinels and not raw.redis_sentinel_master:
        return (), []
    problems: list[Problem] = []
    parsed: list[tuple[str, int]] = []
    bad: list[str] = []
    for entry in raw.redis_sentinels:
        host, _, port = entry.strip().rpartition(":")
        if host and port.isdigit() and 0 < int(port) < 65536:
            parsed.append((host.strip("[]"), int(port)))
        else:
            bad.append(entry)
    if bad:
        problems.append(
            Problem(
                id="veza.E022",
                variable="REDIS_SENTINELS",
                message=f"{', '.join(bad)}: not host:port; left out.",
                fix="List the Sentinels as host:port, comma-separated, e.g. "
                "10.0.0.1:26379,10.0.0.2:26379,10.0.0.3:26379.",
            )
        )
    if not parsed or not raw.redis_sentinel_master:
        problems.append(
            Problem(
                id="veza.E021",
                variable="REDIS_SENTINELS, REDIS_SENTINEL_MASTER",
                message="Sentinel is half configured, so Redis is not used through it.",
                fix="Set both REDIS_SENTINELS (host:port of each Sentinel) and "
                "REDIS_SENTINEL_MASTER (the name they monitor), or neither.",
            )
        )
        return (), problems
    if raw.redis_url:
        problems.append(
            Problem(
                id="veza.E023",
                variable="REDIS_URL, REDIS_SENTINELS",
                message="Both are set; the Sentinels are used and REDIS_URL "
                "is ignored.",
                fix="Unset REDIS_URL when Redis runs under Sentinel.",
            )
        )
    return tuple(parsed), problems


def _weak_secret(key: str) -> bool:
    # Django's deploy check (security.W009) applies the same tests, but only
    # when someone runs `check --deploy`; this rule stops production at start.
    return len(key) < 32 or len(set(key)) < 5 or key.startswith("django-insecure-")


def is_fatal(problem: Problem, *, veza_env: str) -> bool:
    """Production stops on every problem; elsewhere only on the unsafe ones."""
    return problem.fatal_everywhere or veza_env == "production"


def s3_settings_missing(*, bucket: str, access_key: str, secret_key: str) -> list[str]:
    """The variables S3 needs beside AWS_S3_ENABLED that are left empty."""
    return [
        name
        for name, value in (
            ("AWS_STORAGE_BUCKET_NAME", bucket),
            ("AWS_ACCESS_KEY_ID", access_key),
            ("AWS_SECRET_ACCESS_KEY", secret_key),
        )
        if not value
    ]
