"""daphne as `make run` starts it refuses an oversized body before reading it."""

from __future__ import annotations

import json
import socket
import time

import pytest
import requests
from rest_framework.authtoken.models import Token

from tests.webrtc.servers import start_daphne

pytestmark = pytest.mark.django_db(transaction=True)

LIMIT = 2_000_000  # TRACK_MAX_UPLOAD_BYTES for the server under test
OVERHEAD = 64 * 1024  # tracks.uploads.MULTIPART_OVERHEAD


@pytest.fixture
def daphne(settings, tmp_path):
    server = start_daphne(
        settings, tmp_path, extra={"TRACK_MAX_UPLOAD_BYTES": str(LIMIT)}
    )
    yield server
    server.stop()


def exchange(port: int, head: bytes, body_chunks: list[bytes]) -> bytes:
    """Send a request piece by piece; return everything the server answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        try:
            for chunk in body_chunks:
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server hung up mid-body, as it should
        received = b""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            received += data
        return received


def parse(answer: bytes) -> tuple[int, dict]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)


def test_a_declared_length_above_the_limit_is_refused_at_once(daphne):
    """Content-Length 10 GB and no body: a 413 without waiting for bytes."""
    started = time.monotonic()
    answer = exchange(
        daphne.port,
        b"POST /api/v1/tracks/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: multipart/form-data; boundary=x\r\n"
        b"Expect: 100-continue\r\n"
        b"Content-Length: 10000000000\r\n\r\n",
        [],
    )
    status, body = parse(answer)
    assert status == 413
    assert body["error"]["code"] == "payload_too_large"
    assert body["error"]["details"]["max_bytes"] == LIMIT + OVERHEAD
    # The server closed the connection itself (before the 10 s read deadline)
    # and never invited the body.
    assert time.monotonic() - started < 10
    assert b"100 Continue" not in answer


def test_a_chunked_body_stops_being_read_past_the_limit(daphne):
    piece = b"a" * 32768
    chunk = b"%x\r\n%s\r\n" % (len(piece), piece)
    answer = exchange(
        daphne.port,
        b"POST /api/v1/tracks/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: multipart/form-data; boundary=x\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n",
        [chunk] * 400,  # 13 MB if it were all read
    )
    status, body = parse(answer)
    assert status == 413
    assert body["error"]["code"] == "payload_too_large"


def test_bodies_within_the_limit_reach_the_api(daphne, user, wav_file):
    token = Token.objects.create(user=user)
    with wav_file.open("rb") as f:
        response = requests.post(
            f"{daphne.http}/api/v1/tracks/",
            headers={"Authorization": f"Token {token.key}"},
            files={"file": ("tone.wav", f, "audio/wav")},
            data={"title": "Under the limit"},
            timeout=30,
        )
    assert response.status_code == 201, response.text
    assert response.json()["title"] == "Under the limit"
    # The same server keeps answering after refusing a connection.
    refused = exchange(
        daphne.port,
        b"PUT /api/v1/tracks/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Length: 999999999\r\n\r\n",
        [],
    )
    assert parse(refused)[0] == 413
    assert requests.get(f"{daphne.http}/healthz", timeout=10).status_code == 200
