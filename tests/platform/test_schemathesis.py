"""The OpenAPI schema says what the server does: schemathesis against a live server."""

# Every check (status codes, content types, response schemas, valid data
# accepted, invalid data refused, the stateful links from an upload to its
# track), in all its phases, finds nothing. The seed is fixed so that a run is
# repeatable; a failure prints the command that reproduces it.

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from rest_framework.authtoken.models import Token

from tests.tracks.helpers import create_track
from tracks.upload_sessions import upload_session_create
from veza.auth_views import LoginThrottle

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
SEED = "20261203"


def test_schemathesis_finds_nothing(
    live_server, user, other_client, wav_file, tmp_path, monkeypatch, settings
):
    # The login limit and lockout are tested on their own; here they would
    # leave the token endpoint's logic untested after its first cases.
    monkeypatch.setattr(LoginThrottle, "rate", "100000/min")
    settings.AXES_ENABLED = False
    # Uploads are packaged as they are made (tasks run inline here), so the
    # waveform of a track the stateful phase uploads is there to read.
    settings.HLS_PACKAGE_ON_UPLOAD = True
    # Someone else's public track, so lists and playback see more than ours.
    create_track(other_client, wav_file.read_bytes(), visibility="public")
    alice, _ = Token.objects.get_or_create(user=user)
    # A resumable upload of ours in progress, for the upload session reads.
    upload_session_create(owner=user, length=1000, filename="part.wav")

    result = subprocess.run(
        [
            str(SCHEMATHESIS),
            "run",
            f"{live_server.url}/api/schema/",
            "--checks",
            "all",
            "--header",
            f"Authorization: Token {alice.key}",
            "--max-examples",
            "50",
            "--seed",
            SEED,
            # Revoking the run's own token would answer 401 to everything
            # after it; tests/platform/test_api_platform.py covers it.
            "--exclude-operation-id",
            "auth_tokens_revoke",
            # One at a time: the live server shares the test database.
            "--workers",
            "1",
            "--request-timeout",
            "30",
        ],
        cwd=tmp_path,
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "SCHEMATHESIS_HOOKS": "tests.platform.schemathesis_hooks",
            "NO_COLOR": "1",
        },
        capture_output=True,
        text=True,
        timeout=600,
    )
    report = result.stdout[-20000:] + result.stderr[-5000:]
    assert result.returncode == 0, report
    # Warnings too (an operation only ever answering 404, say) fail the test.
    assert "No issues found" in result.stdout, report
    # The stateful phase reached the tracks an upload made.
    assert "API Links:    0 covered" not in result.stdout
