"""Django settings, read once from the environment through django-environ."""

from __future__ import annotations

import secrets
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
    "daphne",
    "channels",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "corsheaders",
    "django_prometheus",
    "django_tasks",
    "django_tasks_db",
]
LOCAL_APPS = [
    "veza.apps.VezaConfig",
    "cdn",
    "tracks",
    "streaming",
    "webrtc",
]
# daphne must come before staticfiles so its runserver takes over.
INSTALLED_APPS = [
    "daphne",
    *DJANGO_APPS,
    *[a for a in THIRD_PARTY_APPS if a != "daphne"],
]
INSTALLED_APPS += LOCAL_APPS

# MIDDLEWARE (Prometheus first and last, so it times everything in between)
# ------------------------------------------------------------------------------
MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
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
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the task worker and the web process write side by side.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# CHANNELS
# ------------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
CHANNEL_LAYERS: dict[str, Any] = (
    {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
    if REDIS_URL
    else {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
)

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
AWS_S3_ADDRESSING_STYLE = env.str("AWS_S3_ADDRESSING_STYLE", default="path")
AWS_S3_MAX_POOL_CONNECTIONS = env.int("AWS_S3_MAX_POOL_CONNECTIONS", default=32)
AWS_S3_MAX_ATTEMPTS = env.int("AWS_S3_MAX_ATTEMPTS", default=5)
# botocore >= 1.36 sends CRC32 trailers that many S3-compatible servers reject.
AWS_S3_CHECKSUM_MODE = env.str("AWS_S3_CHECKSUM_MODE", default="when_required")
AWS_S3_MULTIPART_THRESHOLD = env.int(
    "AWS_S3_MULTIPART_THRESHOLD", default=64 * 1024 * 1024
)

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
    )
)
CONFIG_PROBLEMS = _resolved.problems
TRACK_STORAGE_BACKEND = _resolved.track_storage_backend

# AUTH AND API
# ------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "veza.exception_handler.api_exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Veza media API",
    "DESCRIPTION": "Track storage and playback, CDN signing, HLS and calls.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
}
CORS_ALLOWED_ORIGINS: list[str] = env.list("CORS_ALLOWED_ORIGINS", default=[])
CORS_EXPOSE_HEADERS = ["Content-Length", "Content-Range", "ETag"]

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
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {
        "handlers": ["console"],
        "level": env.str("DJANGO_LOG_LEVEL", default="INFO"),
    },
}
