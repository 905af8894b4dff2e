"""Signed URLs' tokens never reach a log: Django's, gunicorn's, daphne's."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.processes import stop_process
from tests.s3server import free_port
from veza.log_redaction import redact

ROOT = Path(__file__).resolve().parents[2]
SECRET = "Zx9SecretTokenValue"
HASH = "a" * 64
PATHS = [
    f"/healthz?expires=1&token={SECRET}",
    f"/origin/hls/1/{SECRET}/{HASH}/master.m3u8",
    f"/origin/hls/1/{SECRET}/{HASH}/a128/seg-1.m4s?x=1",
    f"/ws/calls/?ticket={SECRET}",
]


@pytest.mark.parametrize("path", PATHS)
def test_redact_keeps_the_url_and_drops_the_token(path):
    text = f'"GET {path} HTTP/1.1" 200'
    redacted = redact(text)
    assert SECRET not in redacted
    assert "[redacted]" in redacted
    assert redacted.replace("[redacted]", SECRET) == text


def clean_env(var_dir: Path, **extra: str) -> dict[str, str]:
    environment = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "VEZA_", "GUNICORN_"))
    }
    environment.pop("DATABASE_URL", None)
    environment.update(
        {
            "DJANGO_SETTINGS_MODULE": "veza.settings.base",
            "VEZA_VAR_DIR": str(var_dir),
            **extra,
        }
    )
    return environment


def test_django_log_lines_are_redacted(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-v0",
            "-c",
            "import logging; logging.getLogger('django.request')"
            f".warning('Not Found: %s', '/origin/hls/1/{SECRET}/{HASH}/x.m4s')",
        ],
        cwd=ROOT,
        env=clean_env(tmp_path / "var", DJANGO_DEBUG="true"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Not Found: /origin/hls/1/[redacted]/" in result.stderr
    assert SECRET not in result.stderr


def get(url: str) -> None:
    with contextlib.suppress(urllib.error.HTTPError):  # 403s and 404s log too
        urllib.request.urlopen(url, timeout=30).close()  # noqa: S310


def wait_for(path: Path, count: int, what: str) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        text = path.read_text() if path.exists() else ""
        if len(text.splitlines()) >= count:
            return text
        time.sleep(0.1)
    raise AssertionError(f"{what} wrote no lines: {text!r}")


def test_gunicorns_access_log_with_the_project_config_is_redacted(tmp_path):
    port = free_port()
    access = tmp_path / "access.log"
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "-c",
            "infra/gunicorn.conf.py",
            "veza.wsgi",
        ],
        cwd=ROOT,
        env=clean_env(
            tmp_path / "var",
            GUNICORN_BIND=f"127.0.0.1:{port}",
            GUNICORN_WORKERS="1",
            GUNICORN_ACCESSLOG=str(access),
            DJANGO_ALLOWED_HOSTS="127.0.0.1",
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                get(f"http://127.0.0.1:{port}/healthz")
                break
            except OSError:
                assert process.poll() is None, "gunicorn exited"
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.1)
        for path in PATHS[:3]:
            get(f"http://127.0.0.1:{port}{path}")
        text = wait_for(access, 4, "gunicorn")
    finally:
        stop_process(process)
    assert SECRET not in text
    assert text.count("[redacted]") == 3


def test_make_runs_daphne_access_log_is_redacted(tmp_path):
    """infra/run-dev.sh (what `make run` starts), its access log read back."""
    var = tmp_path / "var"
    environment = clean_env(var)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"],
        cwd=ROOT,
        env=environment,
        check=True,
        timeout=120,
    )
    port = free_port()
    out = tmp_path / "run.log"
    with out.open("wb") as log:
        process = subprocess.Popen(
            ["bash", "infra/run-dev.sh", "127.0.0.1", str(port)],
            cwd=ROOT,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                get(f"http://127.0.0.1:{port}/healthz")
                break
            except OSError:
                assert process.poll() is None, out.read_text()
                assert time.monotonic() < deadline, out.read_text()
                time.sleep(0.2)
        for path in PATHS[:3]:
            get(f"http://127.0.0.1:{port}{path}")
        deadline = time.monotonic() + 30
        while out.read_text().count("[redacted]") < 3:
            assert time.monotonic() < deadline, out.read_text()
            time.sleep(0.1)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    text = out.read_text()
    assert SECRET not in text
    assert f"/origin/hls/1/[redacted]/{HASH}/master.m3u8" in text
