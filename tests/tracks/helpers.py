"""Helpers shared by the track tests."""

from __future__ import annotations

from django.core.files.uploadedfile import SimpleUploadedFile

LIST_URL = "/api/v1/tracks/"


def upload(
    client,
    content: bytes,
    name: str = "tone.wav",
    content_type: str = "audio/wav",
    **fields,
):
    data = {
        "file": SimpleUploadedFile(name, content, content_type=content_type),
        **fields,
    }
    return client.post(LIST_URL, data, format="multipart")


def create_track(client, content: bytes, **fields) -> dict:
    response = upload(client, content, **fields)
    assert response.status_code == 201, response.content
    return response.json()


def assert_error(response, status: int, code: str) -> None:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    assert isinstance(body["error"]["details"], dict)
