"""Every answer under /api/ is JSON in the one error shape, whatever the request."""

from __future__ import annotations

import base64

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.tracks.helpers import LIST_URL, assert_error, create_track, upload

pytestmark = pytest.mark.django_db


@pytest.fixture(params=[False, True], ids=["production", "debug"])
def debug(request, settings) -> bool:
    """The same answers with DEBUG on (Django's HTML debug pages) and off."""
    settings.DEBUG = request.param
    return request.param


def test_an_upload_to_the_list_without_its_slash_is_taken(debug, auth_client, wav_file):
    data = {"file": SimpleUploadedFile("tone.wav", wav_file.read_bytes(), "audio/wav")}
    response = auth_client.post("/api/v1/tracks", data, format="multipart")
    assert response.status_code == 201, response.content
    assert len(auth_client.get("/api/v1/tracks").json()["results"]) == 1


def test_every_api_route_answers_with_and_without_its_slash(
    debug, auth_client, wav_file
):
    track = create_track(auth_client, wav_file.read_bytes())
    detail = f"/api/v1/tracks/{track['id']}/"
    assert auth_client.get(detail).json()["id"] == track["id"]
    assert auth_client.get(detail.rstrip("/")).json()["id"] == track["id"]
    stream = f"/api/v1/tracks/{track['id']}/stream"
    assert auth_client.get(stream).status_code == 200
    assert auth_client.get(stream + "/").status_code == 200
    assert auth_client.get("/api/v1/calls").status_code == 200
    assert auth_client.get("/api/v1/config/webrtc/").status_code == 200
    token = auth_client.post(
        "/api/v1/auth/token/", {"username": "alice", "password": "alice-pass-123"}
    )
    assert token.status_code == 200
    assert "token" in token.json()


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/tracks/123/",
        "/api/v1/tracks/123",
        "/api/v1/tracks/123/stream",
        "/api/v1/nothing-here/",
        "/api/v2/tracks/",
        "/api/",
    ],
)
def test_an_unmatched_api_path_is_a_json_404(debug, auth_client, path):
    assert_error(auth_client.get(path), 404, "not_found")
    assert_error(auth_client.post(path, {}), 404, "not_found")


def test_an_empty_multipart_upload_is_a_json_400(debug, auth_client):
    response = auth_client.generic(
        "POST",
        LIST_URL,
        b"",
        content_type="multipart/form-data; boundary=nothing",
    )
    assert response["Content-Type"] == "application/json"
    assert_error(response, 400, "file_required")


def test_a_multipart_body_without_a_boundary_is_a_json_400(debug, auth_client):
    response = auth_client.generic(
        "POST", LIST_URL, b"--x\r\n", content_type="multipart/form-data"
    )
    assert_error(response, 400, "parse_error")


@pytest.mark.parametrize(
    "cursor",
    ["abc", "!!!", base64.b64encode(b"p=yesterday").decode(), "cD0yMDI2LTEzLTAx"],
)
@pytest.mark.parametrize("url", [LIST_URL, "/api/v1/calls/"])
def test_a_cursor_the_list_did_not_give_is_a_400(debug, auth_client, url, cursor):
    response = auth_client.get(url, {"cursor": cursor})
    assert_error(response, 400, "invalid_cursor")


@pytest.mark.parametrize("url", [LIST_URL, "/api/v1/calls/"])
def test_page_numbers_are_refused_with_a_pointer_to_the_cursor(auth_client, url):
    response = auth_client.get(url, {"page": 2})
    assert_error(response, 400, "invalid_parameter")
    assert "cursor" in response.json()["error"]["message"]


def test_a_refused_upload_names_no_server_path_or_errno(auth_client, settings):
    response = upload(auth_client, b"this is not audio at all" * 100)
    assert_error(response, 415, "not_audio")
    text = response.content.decode()
    assert str(settings.VAR_DIR) not in text
    assert "upload-" not in text
    assert "Errno" not in text
    assert response.json()["error"]["details"] == {"reason": "unrecognized_format"}


@pytest.mark.parametrize(
    ("path", "item"),
    [("/api/v1/tracks/", "TrackOutput"), ("/api/v1/calls/", "CallOutput")],
)
def test_the_schema_documents_the_lists_as_the_cursor_pages_they_are(
    api_client, path, item
):
    schema = api_client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    operation = schema["paths"][path]["get"]
    assert {p["name"] for p in operation["parameters"]} == {"cursor", "page_size"}
    page = operation["responses"]["200"]["content"]["application/json"]["schema"]
    name = page["$ref"].rsplit("/", 1)[1]
    properties = schema["components"]["schemas"][name]["properties"]
    assert set(properties) == {"next", "previous", "results"}
    assert properties["results"]["items"]["$ref"].endswith("/" + item)
