"""The WSGI entry point: one middleware chain for the whole site, the API included."""

from __future__ import annotations

import io
import json
import sys
from typing import Any

import pytest

from tests.tracks.helpers import create_track


def wsgi_get(path: str, **headers: str) -> tuple[str, dict[str, str], bytes]:
    from veza.wsgi import application

    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "testserver",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        **{"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()},
    }
    seen: dict[str, Any] = {}

    def start_response(status: str, response_headers: list[tuple[str, str]], exc=None):
        seen["status"] = status
        seen["headers"] = dict(response_headers)

    body = b"".join(application(environ, start_response))
    return seen["status"], seen["headers"], body


@pytest.mark.django_db(transaction=True)
def test_the_api_answers_through_the_sites_one_chain(auth_client, wav_file) -> None:
    track = create_track(auth_client, wav_file.read_bytes(), visibility="public")
    token = auth_client._credentials["HTTP_AUTHORIZATION"]
    status, headers, body = wsgi_get(
        f"/api/v1/tracks/{track['id']}/stream", Authorization=token
    )
    assert status == "200 OK", body
    assert json.loads(body)["source"] == "origin"
    # Every middleware of MIDDLEWARE ran, the page ones too: no other list.
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    status, _, body = wsgi_get(f"/api/v1/tracks/{track['id']}/stream")
    assert status.startswith("401"), body


@pytest.mark.django_db(transaction=True)
def test_pages_answer_through_the_same_chain() -> None:
    status, headers, _ = wsgi_get("/admin/login/")
    assert status == "200 OK"
    assert headers["X-Frame-Options"] == "DENY"
    assert "csrftoken" in headers.get("Set-Cookie", "")


@pytest.mark.django_db(transaction=True)
def test_browser_sessions_still_reach_the_api(client, user, auth_client, wav_file):
    """A logged-in browser, without a token, gets its tracks."""
    track = create_track(auth_client, wav_file.read_bytes())
    client.login(username="alice", password="alice-pass-123")
    session = client.cookies["sessionid"].value
    status, _, body = wsgi_get(
        f"/api/v1/tracks/{track['id']}/stream", Cookie=f"sessionid={session}"
    )
    assert status == "200 OK", body
    assert b'"source":"origin"' in body


@pytest.mark.django_db(transaction=True)
def test_both_slash_forms_and_json_404s_through_wsgi(auth_client, wav_file) -> None:
    track = create_track(auth_client, wav_file.read_bytes())
    token = auth_client._credentials["HTTP_AUTHORIZATION"]
    status, _, body = wsgi_get(
        f"/api/v1/tracks/{track['id']}/stream/", Authorization=token
    )
    assert status == "200 OK", body
    status, _, body = wsgi_get(f"/api/v1/tracks/{track['id']}", Authorization=token)
    assert status == "200 OK", body
    status, headers, body = wsgi_get("/api/v1/tracks/123/", Authorization=token)
    assert status.startswith("404"), body
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body)["error"]["code"] == "not_found"
