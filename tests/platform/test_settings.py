"""Configuration: documented variables, and rules enforced at process start."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.s3server import free_port
from veza.settings.base import BASE_DIR, env

PYTHON = sys.executable


def documented(path: Path) -> set[str]:
    text = path.read_text()
    if path.suffix == ".md":
        return set(re.findall(r"`([A-Z][A-Z0-9_]+)`", text))
    return set(re.findall(r"^([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))


def test_every_variable_the_settings_read_is_documented():
    read = set(env.read)
    assert "TRACK_STORAGE_BACKEND" in read
    assert read <= documented(BASE_DIR / ".env.example"), read - documented(
        BASE_DIR / ".env.example"
    )
    docs = documented(BASE_DIR / "docs" / "ENV_VARIABLES.md")
    assert read <= docs, read - docs


def test_nothing_outside_settings_reads_the_environment():
    allowed = {
        "manage.py",
        "veza/asgi.py",
        "veza/wsgi.py",
        "veza/settings/base.py",
        "veza/management/commands/ensure_staff_user.py",
    }
    offenders = []
    apps = ("veza", "tracks", "cdn", "streaming", "webrtc")
    for path in [p for app in apps for p in (BASE_DIR / app).rglob("*.py")]:
        rel = path.relative_to(BASE_DIR).as_posix()
        if rel in allowed:
            continue
        if re.search(r"os\.environ|os\.getenv|environ\.Env\(", path.read_text()):
            offenders.append(rel)
    assert offenders == []


def run_manage(
    *args: str, timeout: int = 60, **env_vars: str
) -> subprocess.CompletedProcess[str]:
    environment = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "VEZA_", "AWS_", "TRACK_"))
    }
    environment.pop("DATABASE_URL", None)
    environment.update({"DJANGO_SETTINGS_MODULE": "veza.settings.base", **env_vars})
    return subprocess.run(
        [PYTHON, "manage.py", *args],
        cwd=BASE_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


PRODUCTION = {
    "VEZA_ENV": "production",
    "DJANGO_SECRET_KEY": "Zq8-production-like-secret-for-tests-9fT3kLmN0pQrStUvWxYz",
    "DJANGO_ALLOWED_HOSTS": "veza.example",
    "DJANGO_DEBUG": "false",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
}


@pytest.fixture
def var_dir(tmp_path) -> str:
    return str(tmp_path / "var")


@pytest.mark.parametrize("value", ["S3", "minio", " s3"])
def test_production_refuses_a_bad_storage_backend(var_dir, value):
    result = run_manage(
        "check", VEZA_VAR_DIR=var_dir, TRACK_STORAGE_BACKEND=value, **PRODUCTION
    )
    assert result.returncode != 0
    assert "veza.E002 TRACK_STORAGE_BACKEND" in result.stderr
    assert "exactly 'local' or 's3'" in result.stderr


def test_production_refuses_s3_without_credentials(var_dir):
    result = run_manage(
        "check",
        VEZA_VAR_DIR=var_dir,
        TRACK_STORAGE_BACKEND="s3",
        AWS_S3_ENABLED="true",
        **PRODUCTION,
    )
    assert result.returncode != 0
    assert "veza.E004" in result.stderr
    assert "AWS_STORAGE_BUCKET_NAME" in result.stderr


def test_production_refuses_debug_empty_hosts_and_no_secret(var_dir):
    result = run_manage(
        "check",
        VEZA_VAR_DIR=var_dir,
        VEZA_ENV="production",
        DJANGO_DEBUG="true",
        DJANGO_ALLOWED_HOSTS="",
    )
    assert result.returncode != 0
    for needle in (
        "veza.E005 DJANGO_DEBUG",
        "veza.E006 DJANGO_ALLOWED_HOSTS",
        "veza.E007 DJANGO_SECRET_KEY",
    ):
        assert needle in result.stderr


def test_production_refuses_a_sample_secret_and_any_host(var_dir):
    result = run_manage(
        "check",
        VEZA_VAR_DIR=var_dir,
        **{**PRODUCTION, "DJANGO_SECRET_KEY": "a" * 32, "DJANGO_ALLOWED_HOSTS": "*"},
    )
    assert result.returncode != 0
    assert "veza.E006 DJANGO_ALLOWED_HOSTS" in result.stderr
    assert "veza.E007 DJANGO_SECRET_KEY" in result.stderr


def test_staging_warns_about_debug_and_starts(var_dir):
    result = run_manage(
        "check",
        VEZA_VAR_DIR=var_dir,
        **{**PRODUCTION, "VEZA_ENV": "staging", "DJANGO_DEBUG": "true"},
    )
    assert result.returncode == 0, result.stderr
    assert "veza.W005" in result.stderr


def test_development_warns_and_falls_back_to_local(var_dir):
    result = run_manage("check", VEZA_VAR_DIR=var_dir, TRACK_STORAGE_BACKEND="s3")
    assert result.returncode == 0, result.stderr
    assert "veza.W003" in result.stderr
    assert "AWS_S3_ENABLED" in result.stderr
    shown = run_manage(
        "shell",
        "-c",
        "from django.conf import settings; print(settings.TRACK_STORAGE_BACKEND)",
        VEZA_VAR_DIR=var_dir,
        TRACK_STORAGE_BACKEND="minio",
    )
    assert shown.stdout.strip().splitlines()[-1] == "local"


def test_unknown_environment_stops_even_outside_production(var_dir):
    result = run_manage("check", VEZA_VAR_DIR=var_dir, VEZA_ENV="prod")
    assert result.returncode != 0
    assert "veza.E001 VEZA_ENV" in result.stderr


def test_a_valid_production_configuration_passes_check_deploy(var_dir):
    result = run_manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        VEZA_VAR_DIR=var_dir,
        **PRODUCTION,
    )
    assert result.returncode == 0, result.stderr


def test_daphne_stops_at_start_on_a_bad_production_configuration(var_dir):
    environment = {
        **os.environ,
        **PRODUCTION,
        "VEZA_VAR_DIR": var_dir,
        "TRACK_STORAGE_BACKEND": "S3",
        "DJANGO_SETTINGS_MODULE": "veza.settings.base",
    }
    daphne = str(Path(PYTHON).parent / "daphne")
    result = subprocess.run(
        [daphne, "-b", "127.0.0.1", "-p", str(free_port()), "veza.asgi:application"],
        cwd=BASE_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "veza.E002 TRACK_STORAGE_BACKEND" in result.stderr


def test_a_django_warning_is_logged_once_in_development(var_dir):
    result = run_manage(
        "shell",
        "-v0",
        "-c",
        "import logging; logging.getLogger('django.request').warning('probe-42')",
        VEZA_VAR_DIR=var_dir,
        DJANGO_DEBUG="true",
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if "probe-42" in line]
    assert len(lines) == 1, result.stderr
    assert "WARNING django.request probe-42" in lines[0]


def test_sentinels_wire_the_cache_and_the_channel_layer(var_dir):
    shown = run_manage(
        "shell",
        "-c",
        "import json; from django.conf import settings;"
        "print(json.dumps([settings.CACHES, settings.CHANNEL_LAYERS]))",
        VEZA_VAR_DIR=var_dir,
        REDIS_URL="",
        REDIS_SENTINELS="10.0.0.1:26379,10.0.0.2:26379",
        REDIS_SENTINEL_MASTER="Veza-Main",
        REDIS_PASSWORD="master-secret",
        REDIS_DB="2",
    )
    assert shown.returncode == 0, shown.stderr
    caches, layers = json.loads(shown.stdout.strip().splitlines()[-1])
    assert caches["default"] == {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://Veza-Main/2",
        "OPTIONS": {"pool_class": "veza.redis_sentinel.SentinelMasterPool"},
    }
    assert layers["default"]["CONFIG"]["hosts"] == [
        {
            "sentinels": [["10.0.0.1", 26379], ["10.0.0.2", 26379]],
            "master_name": "Veza-Main",
            "sentinel_kwargs": {"password": None},
            "password": "master-secret",
            "db": 2,
        }
    ]


def test_half_configured_sentinels_stop_production(var_dir):
    shown = run_manage(
        "check",
        VEZA_VAR_DIR=var_dir,
        **{**PRODUCTION, "REDIS_URL": "", "REDIS_SENTINELS": "10.0.0.1:26379"},
    )
    assert shown.returncode != 0
    assert "veza.E021" in shown.stderr + shown.stdout
