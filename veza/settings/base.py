"""Django settings, read once from the environment through django-environ."""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

import environ

from veza import config

BASE_DIR = Path(__file__).resolve().parent.parent.parent


class RecordingEnv(environ.Env):
    """An `environ.Env` that remembers every variable it was asked for.

    The test suite compares this list with `.env.example` and
    `docs/ENV_VARIABLES.md`, so the template and the docs cannot drift.
    """

    read: set[str] = set()

    def get_value(self, var: str, *args: Any, **kwargs: Any) -> Any:
        self.read.add(var)
        return super().get_value(var, *args, **kwargs)


env = RecordingEnv()
if (BASE_DIR / ".env").is_file():
    # OS variables win over the file.
    env.read_env(BASE_DIR / ".env", overwrite=False)

# GENERAL
# ------------------------------------------------------------------------------
VEZA_ENV = env.str("VEZA_ENV", default="development")
DEVELOPMENT = VEZA_ENV == "development"
PRODUCTION = VEZA_ENV == "production"
DEBUG = env.bool("DJANGO_DEBUG", default=DEVELOPMENT)
VAR_DIR = Path(env.str("VEZA_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

_secret_key = env.str("DJANGO_SECRET_KEY", default="")
if not _secret_key and not PRODUCTION:
    # Outside production a random key is made once and kept under var/, so
    # sessions survive restarts; production refuses to start without one.
    _key_file = VAR_DIR / "secret_key"
    if not _key_file.exists():
        _key_file.write_text(secrets.token_urlsafe(50))
        _key_file.chmod(0o600)
    _secret_key = _key_file.read_text().strip()
SECRET_KEY = _secret_key

ALLOWED_HOSTS: list[str] = env.list(
    "DJANGO_ALLOWED_HOSTS",
    default=[] if PRODUCTION else ["localhost", "127.0.0.1", "[::1]"],
)
CSRF_TRUSTED_ORIGINS: list[str] = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

TIME_ZONE = "UTC"
USE_TZ = True
LANGUAGE_CODE = "en-us"
USE_I18N = True

# APPS
# ------------------------------------------------------------------------------
DJANGO_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
]
THIRD_PARTY_APPS = [
    "channels",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI assets served locally, not from a CDN
    "corsheaders",
    "django_prometheus",
    "django_tasks",
    "django_tasks_db",
    "axes",  # login lockout (veza/lockout.py)
]
LOCAL_APPS = [
    "veza.apps.VezaConfig",
    "cdn",
    "mediastore",
    "tracks",
    "streaming",
    "webrtc",
]
# Not the "daphne" app: it only swaps in an ASGI `runserver`, and importing it
# loads twisted (0.16 s) into every process. `make run` starts daphne itself.
INSTALLED_APPS = DJANGO_APPS + THIRD_PARTY_APPS + LOCAL_APPS

# MIDDLEWARE (request metrics first, so they time everything after)
# ------------------------------------------------------------------------------
MIDDLEWARE = [
    "veza.request_metrics.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "veza.cors.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes requires: turns a locked-out login into its 429.
    "axes.middleware.AxesMiddleware",
]
ROOT_URLCONF = "veza.urls"
WSGI_APPLICATION = "veza.wsgi.application"
ASGI_APPLICATION = "veza.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    }
]

# DATABASES
# ------------------------------------------------------------------------------
DATABASES = {
    "default": env.db_url(
        "DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'veza.sqlite3'}"
    )
}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
# A SELECT 1 before reusing a connection in each request (one round trip):
# without it, a connection left idle through a database restart fails its
# next request with a 503 (tests/platform/test_postgres_restart.py).
DATABASES["default"]["CONN_HEALTH_CHECKS"] = env.bool(
    "DATABASE_CONN_HEALTH_CHECKS", default=True
)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the task worker and the web process write side by side.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# REDIS (channel layer and shared cache; wired after the configuration rules)
# ------------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
# Or Redis under Sentinel: the Sentinels (host:port, comma-separated), the
# master's name, and the passwords of the Sentinels and of the master.
REDIS_SENTINELS_RAW: list[str] = env.list("REDIS_SENTINELS", default=[])
REDIS_SENTINEL_MASTER = env.str("REDIS_SENTINEL_MASTER", default="")
REDIS_SENTINEL_PASSWORD = env.str("REDIS_SENTINEL_PASSWORD", default="")
REDIS_PASSWORD = env.str("REDIS_PASSWORD", default="")
REDIS_DB = env.int("REDIS_DB", default=0)

# Seconds an API token's user is cached; 0 looks it up on every request.
API_TOKEN_CACHE_SECONDS = env.int("API_TOKEN_CACHE_SECONDS", default=30)
# Days an API token lives; a new password or a deactivation ends it sooner.
API_TOKEN_TTL_DAYS = env.int("API_TOKEN_TTL_DAYS", default=30)

# TASKS (django-tasks, database backend; `manage.py db_worker` runs them)
# ------------------------------------------------------------------------------
TASKS: dict[str, Any] = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}

# STATIC AND MEDIA
# ------------------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
# Without collectstatic, WhiteNoise serves straight from the app folders.
WHITENOISE_USE_FINDERS = True
MEDIA_ROOT = Path(env.str("VEZA_MEDIA_ROOT", default=str(VAR_DIR / "media")))

# TRACK STORAGE
# ------------------------------------------------------------------------------
_raw_backend = env.str("TRACK_STORAGE_BACKEND", default="local")
TRACK_MAX_UPLOAD_BYTES = env.int("TRACK_MAX_UPLOAD_BYTES", default=512 * 1024 * 1024)
# Longer audio, declared or found, is refused with 422 audio_too_long.
TRACK_MAX_DURATION_SECONDS = env.int("TRACK_MAX_DURATION_SECONDS", default=2 * 3600)
# Per-user upload limits (each user's own can be set in the admin); 0 means
# none. Storage: bytes of a user's tracks; daily: what a user uploads per UTC
# day, deleted tracks included.
TRACK_QUOTA_BYTES = env.int("TRACK_QUOTA_BYTES", default=10 * 1024**3)
TRACK_DAILY_UPLOAD_BYTES = env.int("TRACK_DAILY_UPLOAD_BYTES", default=2 * 1024**3)
TRACK_DAILY_UPLOAD_TRACKS = env.int("TRACK_DAILY_UPLOAD_TRACKS", default=100)
# Resumable uploads (tus): a session not written to for this long expires
# (`manage.py expire_uploads` deletes its bytes); at most this many open at
# once per user.
UPLOAD_SESSION_TTL = env.int("UPLOAD_SESSION_TTL", default=24 * 3600)
UPLOAD_MAX_OPEN_SESSIONS = env.int("UPLOAD_MAX_OPEN_SESSIONS", default=5)
# With tracks on S3, the upload page sends parts straight to the bucket (its
# CORS must allow the site, docs/OPERATIONS.md); false keeps the page on tus.
UPLOAD_PAGE_S3_DIRECT = env.bool("UPLOAD_PAGE_S3_DIRECT", default=True)
# How long a stream/download URL stays valid, in seconds.
TRACK_URL_TTL = env.int("TRACK_URL_TTL", default=3600)
VEZA_ACCEL_REDIRECT_PREFIX = env.str("VEZA_ACCEL_REDIRECT_PREFIX", default="")
# Key for origin URL tokens; defaults to one derived from SECRET_KEY.
VEZA_ORIGIN_TOKEN_KEY = env.str("VEZA_ORIGIN_TOKEN_KEY", default="")

AWS_S3_ENABLED = env.bool("AWS_S3_ENABLED", default=False)
AWS_STORAGE_BUCKET_NAME = env.str("AWS_STORAGE_BUCKET_NAME", default="")
AWS_ACCESS_KEY_ID = env.str("AWS_ACCESS_KEY_ID", default="")
AWS_SECRET_ACCESS_KEY = env.str("AWS_SECRET_ACCESS_KEY", default="")
AWS_S3_ENDPOINT_URL = env.str("AWS_S3_ENDPOINT_URL", default="") or None
# Presigned URLs are signed for this host (the host is part of the signature).
AWS_S3_PUBLIC_ENDPOINT_URL = env.str("AWS_S3_PUBLIC_ENDPOINT_URL", default="") or None
AWS_S3_REGION_NAME = env.str("AWS_S3_REGION_NAME", default="us-east-1")
_raw_addressing_style = env.str("AWS_S3_ADDRESSING_STYLE", default="path")
# TLS to the S3 endpoint: "true" (system roots), "false" (no verification,
# test servers only) or the path of a CA bundle to trust as well.
_raw_s3_verify = env.str("AWS_S3_VERIFY", default="true")
AWS_S3_VERIFY: bool | str = (
    _raw_s3_verify.lower() not in ("false", "0", "no")
    if _raw_s3_verify.lower() in ("true", "1", "yes", "false", "0", "no", "")
    else _raw_s3_verify
)
AWS_S3_CONNECT_TIMEOUT = env.float("AWS_S3_CONNECT_TIMEOUT", default=5.0)
AWS_S3_READ_TIMEOUT = env.float("AWS_S3_READ_TIMEOUT", default=60.0)
AWS_S3_MAX_POOL_CONNECTIONS = env.int("AWS_S3_MAX_POOL_CONNECTIONS", default=32)
AWS_S3_MAX_ATTEMPTS = env.int("AWS_S3_MAX_ATTEMPTS", default=5)
# botocore >= 1.36 sends CRC32 trailers that many S3-compatible servers reject.
AWS_S3_CHECKSUM_MODE = env.str("AWS_S3_CHECKSUM_MODE", default="when_required")
# Sign each body's SHA-256 as the SigV4 payload hash, over http and https.
# Off: every PUT and multipart part carries Content-MD5, which the server
# checks, and signing would hash every byte once more.
AWS_S3_SIGN_PAYLOAD = env.bool("AWS_S3_SIGN_PAYLOAD", default=False)
AWS_S3_MULTIPART_THRESHOLD = env.int(
    "AWS_S3_MULTIPART_THRESHOLD", default=64 * 1024 * 1024
)
# "" or "sha256": bulk copies (the native engine) also send
# x-amz-checksum-sha256, for servers that verify it (AWS S3, MinIO).
_raw_checksum_algorithm = env.str("AWS_S3_CHECKSUM_ALGORITHM", default="")

# Where media bytes live (mediastore/backends.py): `media_local` under
# MEDIA_ROOT, `media_s3` the bucket above; each row says which it is on.
STORAGES: dict[str, Any] = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "media_local": {"BACKEND": "mediastore.backends.LocalMediaStorage"},
    "media_s3": {
        "BACKEND": "mediastore.s3.S3MediaStorage",
        # Always presigned: playback URLs through a CDN are signed by cdn/.
        "OPTIONS": {"custom_domain": None},
    },
}

# CDN (cdn/; rules veza.E010-E018 in veza/config.py)
# ------------------------------------------------------------------------------
CDN_ENABLED = env.bool("CDN_ENABLED", default=False)
CDN_PROVIDER = env.str("CDN_PROVIDER", default="bunny")
CDN_BASE_URL = env.str("CDN_BASE_URL", default="")
CDN_SECURITY_KEY = env.str("CDN_SECURITY_KEY", default="")
# Still accepted by the verifiers while edges switch to the new key.
CDN_PREVIOUS_SECURITY_KEY = env.str("CDN_PREVIOUS_SECURITY_KEY", default="")
# Longest life of a URL that goes past the origin (CDN tokens, S3 presigned
# URLs): nothing can recall one, so it is short.
CDN_TOKEN_TTL = env.int("CDN_TOKEN_TTL", default=600)
CDN_FALLBACK = env.str("CDN_FALLBACK", default="origin")
CDN_BUNNY_TOKEN_SCHEME = env.str("CDN_BUNNY_TOKEN_SCHEME", default="hmac")
CDN_BUNNY_COUNTRIES_ALLOWED: list[str] = env.list(
    "CDN_BUNNY_COUNTRIES_ALLOWED", default=[]
)
CDN_BUNNY_COUNTRIES_BLOCKED: list[str] = env.list(
    "CDN_BUNNY_COUNTRIES_BLOCKED", default=[]
)
CDN_BUNNY_SPEED_LIMIT = env.int("CDN_BUNNY_SPEED_LIMIT", default=0)
CDN_CLOUDFLARE_MAC_ENCODING = env.str("CDN_CLOUDFLARE_MAC_ENCODING", default="base64")
# /hls/<64 hex>/ is 70 characters: the WAF rule's fixed directory prefix.
CDN_CLOUDFLARE_PREFIX_LENGTH = env.int("CDN_CLOUDFLARE_PREFIX_LENGTH", default=70)
CDN_KEY_PAIR_ID = env.str("CDN_KEY_PAIR_ID", default="")
CDN_PRIVATE_KEY_FILE = env.str("CDN_PRIVATE_KEY_FILE", default="")
CDN_PREVIOUS_KEY_PAIR_ID = env.str("CDN_PREVIOUS_KEY_PAIR_ID", default="")
CDN_PREVIOUS_PUBLIC_KEY_FILE = env.str("CDN_PREVIOUS_PUBLIC_KEY_FILE", default="")
CDN_R2_ACCOUNT_ID = env.str("CDN_R2_ACCOUNT_ID", default="")
CDN_R2_ACCESS_KEY_ID = env.str("CDN_R2_ACCESS_KEY_ID", default="")
CDN_R2_SECRET_ACCESS_KEY = env.str("CDN_R2_SECRET_ACCESS_KEY", default="")
CDN_R2_BUCKET = env.str("CDN_R2_BUCKET", default="")
CDN_CACHE_CONTROL_SEGMENTS = env.str(
    "CDN_CACHE_CONTROL_SEGMENTS", default="public, max-age=86400, immutable"
)
CDN_CACHE_CONTROL_PLAYLISTS = env.str(
    "CDN_CACHE_CONTROL_PLAYLISTS", default="public, max-age=60"
)

# HLS (streaming/)
# ------------------------------------------------------------------------------
# Every upload is packaged by a task unless this is off (backfill with
# `manage.py package_hls`).
HLS_PACKAGE_ON_UPLOAD = env.bool("HLS_PACKAGE_ON_UPLOAD", default=True)
# The loudness players bring every track to (integrated, LUFS): the HLS
# answer's `loudness.gain_db`, capped so the true peak stays at -1 dBTP.
PLAYER_TARGET_LUFS = env.float("PLAYER_TARGET_LUFS", default=-14.0)
# The AAC-LC ladder in kb/s, lowest first, and the segment length in seconds.
HLS_LADDER: list[int] = sorted(env.list("HLS_LADDER", cast=int, default=[64, 128, 256]))
HLS_SEGMENT_SECONDS = env.int("HLS_SEGMENT_SECONDS", default=6)
# How long a master playlist URL (its directory token) stays valid, in seconds.
HLS_URL_TTL = env.int("HLS_URL_TTL", default=3600)
# Origins allowed to fetch HLS files with XHR/fetch (hls.js); "*" allows all.
HLS_CORS_ALLOWED_ORIGINS: list[str] = env.list(
    "HLS_CORS_ALLOWED_ORIGINS", default=["*"]
)
# Sites allowed to embed the player page in a frame; "*" allows all.
HLS_PLAYER_FRAME_ANCESTORS: list[str] = env.list(
    "HLS_PLAYER_FRAME_ANCESTORS", default=["*"]
)
# A package still "processing" after this many seconds is taken for crashed.
HLS_PACKAGE_LEASE_SECONDS = env.int("HLS_PACKAGE_LEASE_SECONDS", default=1800)
# Wall-clock seconds one package may take to encode; then it fails `timeout`.
HLS_PACKAGE_MAX_SECONDS = env.int("HLS_PACKAGE_MAX_SECONDS", default=600)
# Seconds a superseded package (its track has a newer one ready) keeps
# serving before its files and row are deleted. Never less than the longest
# URL lifetime plus the playlists' max-age, whatever is set here.
HLS_SUPERSEDED_GRACE_SECONDS = env.int("HLS_SUPERSEDED_GRACE_SECONDS", default=86400)

# WEBRTC (webrtc/; rules veza.E030-E034 in veza/config.py)
# ------------------------------------------------------------------------------
WEBRTC_STUN_URLS: list[str] = env.list("WEBRTC_STUN_URLS", default=[])
WEBRTC_TURN_URLS: list[str] = env.list("WEBRTC_TURN_URLS", default=[])
WEBRTC_TURN_USERNAME = env.str("WEBRTC_TURN_USERNAME", default="")
WEBRTC_TURN_CREDENTIAL = env.str("WEBRTC_TURN_CREDENTIAL", default="")
# TURN REST shared secrets (coturn use-auth-secret): the first signs, coturn
# accepts every one, so a new secret goes first during a rotation.
WEBRTC_TURN_SECRETS: list[str] = env.list("WEBRTC_TURN_SECRET", default=[])
WEBRTC_TURN_TTL = env.int("WEBRTC_TURN_TTL", default=3600)
WEBRTC_TURN_ALLOW_ANONYMOUS = env.bool("WEBRTC_TURN_ALLOW_ANONYMOUS", default=False)
WEBRTC_CONFIG_RATE = env.str("WEBRTC_CONFIG_RATE", default="60/min")
WEBRTC_RING_TIMEOUT: float = env.int("WEBRTC_RING_TIMEOUT", default=45)
# Seconds a party's device may be gone before the call ends with peer_gone.
WEBRTC_DISCONNECT_GRACE: float = env.float("WEBRTC_DISCONNECT_GRACE", default=5.0)
# Not from env: protocol limits, overridden only by tests.
WEBRTC_TICKET_TTL = 60
WEBRTC_MAX_MESSAGE_BYTES = 64 * 1024
WEBRTC_MESSAGE_RATE = 20.0  # messages per second per connection, sustained
WEBRTC_MESSAGE_BURST = 60  # ICE candidates arrive in bursts
WEBRTC_MAX_VIOLATIONS = 20  # rate-limited messages before the socket is closed
# Invites a user may send per minute, and rings a user may get from everyone,
# over all their sockets and processes (counted in the shared cache).
WEBRTC_INVITES_PER_MINUTE = 10
WEBRTC_RINGS_PER_MINUTE = 30

# CONFIGURATION RULES (veza/config.py; reported by veza/checks.py)
# ------------------------------------------------------------------------------
_resolved = config.resolve(
    config.RawConfig(
        veza_env=VEZA_ENV,
        debug=DEBUG,
        allowed_hosts=ALLOWED_HOSTS,
        secret_key=SECRET_KEY,
        track_storage_backend=_raw_backend,
        s3_enabled=AWS_S3_ENABLED,
        s3_bucket=AWS_STORAGE_BUCKET_NAME,
        s3_access_key=AWS_ACCESS_KEY_ID,
        s3_secret_key=AWS_SECRET_ACCESS_KEY,
        s3_addressing_style=_raw_addressing_style,
        s3_checksum_algorithm=_raw_checksum_algorithm,
        cdn_enabled=CDN_ENABLED,
        cdn_provider=CDN_PROVIDER,
        cdn_base_url=CDN_BASE_URL,
        cdn_security_key=CDN_SECURITY_KEY,
        cdn_token_ttl=CDN_TOKEN_TTL,
        cdn_fallback=CDN_FALLBACK,
        cdn_bunny_token_scheme=CDN_BUNNY_TOKEN_SCHEME,
        cdn_cloudflare_mac_encoding=CDN_CLOUDFLARE_MAC_ENCODING,
        cdn_key_pair_id=CDN_KEY_PAIR_ID,
        cdn_private_key_file=CDN_PRIVATE_KEY_FILE,
        cdn_r2_account_id=CDN_R2_ACCOUNT_ID,
        cdn_r2_access_key_id=CDN_R2_ACCESS_KEY_ID,
        cdn_r2_secret_access_key=CDN_R2_SECRET_ACCESS_KEY,
        cdn_r2_bucket=CDN_R2_BUCKET,
        webrtc_stun_urls=tuple(WEBRTC_STUN_URLS),
        webrtc_turn_urls=tuple(WEBRTC_TURN_URLS),
        webrtc_turn_username=WEBRTC_TURN_USERNAME,
        webrtc_turn_credential=WEBRTC_TURN_CREDENTIAL,
        webrtc_turn_secrets=tuple(WEBRTC_TURN_SECRETS),
        webrtc_turn_ttl=WEBRTC_TURN_TTL,
        webrtc_ring_timeout=int(WEBRTC_RING_TIMEOUT),
        redis_url=REDIS_URL,
        redis_sentinels=tuple(REDIS_SENTINELS_RAW),
        redis_sentinel_master=REDIS_SENTINEL_MASTER,
    )
)
CONFIG_PROBLEMS = _resolved.problems
TRACK_STORAGE_BACKEND = _resolved.track_storage_backend
AWS_S3_ADDRESSING_STYLE = _resolved.s3_addressing_style
AWS_S3_CHECKSUM_ALGORITHM = _resolved.s3_checksum_algorithm
WEBRTC_TURN_TTL = _resolved.webrtc_turn_ttl
WEBRTC_RING_TIMEOUT = _resolved.webrtc_ring_timeout
REDIS_SENTINELS: list[tuple[str, int]] = list(_resolved.redis_sentinels)

# CHANNELS AND CACHE (Redis when configured, so every process shares them)
# ------------------------------------------------------------------------------
# Pub/sub, not the list-based RedisChannelLayer: that one receives one message
# per process at a time in four Redis round trips (EVAL, BZPOPMIN, ZADD,
# ZPOPMIN), which caps one daphne at a few hundred relayed messages a second;
# pub/sub pushes each message in one PUBLISH. Signaling frames are best-effort
# either way (a peer that is gone loses them; the call state lives in the DB).
if REDIS_SENTINELS:
    _redis_host: dict[str, Any] | None = {
        # channels-redis asks the Sentinels for the master (and again after
        # a failover) through redis-py's SentinelConnectionPool.
        "sentinels": REDIS_SENTINELS,
        "master_name": REDIS_SENTINEL_MASTER,
        "sentinel_kwargs": {"password": REDIS_SENTINEL_PASSWORD or None},
        "password": REDIS_PASSWORD or None,
        "db": REDIS_DB,
    }
    _cache: dict[str, Any] = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        # The pool class finds the master through the Sentinels; the URL
        # only names the master (veza/redis_sentinel.py).
        "LOCATION": f"redis://{REDIS_SENTINEL_MASTER}/{REDIS_DB}",
        "OPTIONS": {"pool_class": "veza.redis_sentinel.SentinelMasterPool"},
    }
elif REDIS_URL:
    _redis_host = {"address": REDIS_URL}
    _cache = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
    }
else:
    _redis_host = None
    _cache = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
CHANNEL_LAYERS: dict[str, Any] = {
    "default": (
        {
            "BACKEND": "veza.channel_layers.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [_redis_host]},
        }
        if _redis_host
        else {"BACKEND": "veza.channel_layers.InMemoryChannelLayer"}
    )
}
CACHES: dict[str, Any] = {"default": _cache}

# AUTH AND API
# ------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "veza.authentication.CachedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "veza.pagination.NewestFirstPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "veza.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "veza.exception_handler.api_exception_handler",
    # Throttles key anonymous callers by address: REMOTE_ADDR, or the
    # X-Forwarded-For entry this many trusted proxies back (1 behind nginx).
    # DRF's default (None) takes the header as the client sent it, so a new
    # value per try escaped every limit.
    "NUM_PROXIES": env.int("VEZA_TRUSTED_PROXY_COUNT", default=0),
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # JSON only outside debug: /api/docs/ documents the API.
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        *(["rest_framework.renderers.BrowsableAPIRenderer"] if DEBUG else []),
    ],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Veza media API",
    "DESCRIPTION": "Track storage and playback, CDN signing, HLS and calls. "
    'Every error is JSON: `{"error": {"code", "message", "details"}}`, '
    "`code` stable. Authenticate with `Authorization: Token <key>` (from "
    "`POST /api/v1/auth/token`) or the browser's session.",
    "VERSION": "1",
    # One tag per app (veza.openapi.AutoSchema), in the order the docs show.
    "TAGS": [
        {"name": "veza", "description": "API tokens."},
        {"name": "tracks", "description": "Upload, list, change and play tracks."},
        {"name": "streaming", "description": "HLS playback of tracks."},
        {"name": "webrtc", "description": "Calls: ICE servers, tickets, history."},
    ],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "veza.openapi.add_links",
    ],
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}
# /metrics (veza/metrics_access.py): scraped with this bearer token or from
# these addresses; in production closed until one is set.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_ALLOWED_IPS: list[str] = env.list("METRICS_ALLOWED_IPS", default=[])
CORS_ALLOWED_ORIGINS: list[str] = env.list("CORS_ALLOWED_ORIGINS", default=[])
CORS_EXPOSE_HEADERS = ["Content-Length", "Content-Range", "ETag"]
# The HLS origin answers CORS itself (HLS_CORS_ALLOWED_ORIGINS), preflights
# included; django-cors-headers would answer those first, without the header.
CORS_URLS_REGEX = r"^/(?!origin/hls/)"

# LOGIN LOCKOUT (django-axes; veza/lockout.py)
# ------------------------------------------------------------------------------
# Every login path (API token, admin, calls page) goes through authenticate(),
# where AxesStandaloneBackend refuses a locked-out account or address.
AUTHENTICATION_BACKENDS = [
    "veza.lockout.LockoutBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Failures in a row (a success resets them) for one account, or from one
# address, before further tries are refused with 429 until the cool-off.
AXES_FAILURE_LIMIT = env.int("VEZA_LOGIN_FAILURE_LIMIT", default=10)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("VEZA_LOGIN_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_HTTP_RESPONSE_CODE = 429
AXES_CLIENT_IP_CALLABLE = "veza.lockout.client_address"
AXES_LOCKOUT_CALLABLE = "veza.lockout.lockout_response"
AXES_VERBOSE = False

# SECURITY
# ------------------------------------------------------------------------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=PRODUCTION)
SECURE_HSTS_SECONDS = env.int(
    "DJANGO_SECURE_HSTS_SECONDS", default=31536000 if PRODUCTION else 0
)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = SECURE_HSTS_SECONDS > 0
SESSION_COOKIE_SECURE = not DEVELOPMENT
CSRF_COOKIE_SECURE = not DEVELOPMENT
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# Uploads above this many bytes are spooled to disk, never held in memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 256 * 1024

# LOGGING
# ------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}
    },
    # Signed URLs' tokens never reach a log line (veza/log_redaction.py).
    "filters": {"redact": {"()": "veza.log_redaction.RedactSecrets"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["redact"],
        }
    },
    "root": {
        "handlers": ["console"],
        "level": env.str("DJANGO_LOG_LEVEL", default="INFO"),
    },
    # Django's default logging gives "django" its own console handler when
    # DEBUG is on, and the records also reach the root's: every warning of
    # `make run` was printed twice. The root's handler prints them once.
    "loggers": {"django": {"handlers": [], "level": "INFO", "propagate": True}},
}
