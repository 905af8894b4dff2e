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


@pytest.mark.parametrize("page_size", ["abc", "0", "-1", "201", "1.5", "", "null"])
@pytest.mark.parametrize("url", [LIST_URL, "/api/v1/calls/"])
def test_a_page_size_out_of_range_is_a_400(auth_client, url, page_size):
    response = auth_client.get(url, {"page_size": page_size})
    assert_error(response, 400, "invalid_parameter")
    assert response.json()["error"]["details"] == {"parameter": "page_size"}


def test_the_largest_page_size_is_taken(auth_client):
    assert auth_client.get(LIST_URL, {"page_size": 200}).status_code == 200


@pytest.mark.parametrize("value", ["maybe", "", "yes", "2"])
def test_a_redirect_that_is_not_a_boolean_is_a_400(auth_client, wav_file, value):
    track = create_track(auth_client, wav_file.read_bytes())
    response = auth_client.get(
        f"/api/v1/tracks/{track['id']}/stream", {"redirect": value}
    )
    assert_error(response, 400, "invalid_parameter")
    for value in ("true", "1"):
        response = auth_client.get(
            f"/api/v1/tracks/{track['id']}/stream", {"redirect": value}
        )
        assert response.status_code == 302
    for value in ("false", "0"):
        response = auth_client.get(
            f"/api/v1/tracks/{track['id']}/stream", {"redirect": value}
        )
        assert response.status_code == 200


@pytest.mark.parametrize(
    "title", ["", "   ", "\u3000\u00a0", "two\nlines", "tab\there", "nul\x00", "\x85"]
)
def test_a_title_that_is_not_one_line_of_text_is_refused(auth_client, wav_file, title):
    assert_error(
        upload(auth_client, wav_file.read_bytes(), title=title), 400, "invalid"
    )
    track = create_track(auth_client, wav_file.read_bytes())
    response = auth_client.patch(
        f"{LIST_URL}{track['id']}/", {"title": title}, format="json"
    )
    assert_error(response, 400, "invalid")


def test_a_title_is_stored_without_surrounding_spaces(auth_client, wav_file):
    track = create_track(auth_client, wav_file.read_bytes(), title="  Night\u2003 ")
    assert track["title"] == "Night"
    response = auth_client.patch(
        f"{LIST_URL}{track['id']}/", {"title": "\ufeffDawn"}, format="json"
    )
    assert response.json()["title"] == "\ufeffDawn"


@pytest.mark.parametrize("title", [5, True, None, ["a"], {"a": 1}])
def test_a_title_that_is_not_a_string_is_refused(auth_client, wav_file, title):
    track = create_track(auth_client, wav_file.read_bytes())
    response = auth_client.patch(
        f"{LIST_URL}{track['id']}/", {"title": title}, format="json"
    )
    assert_error(response, 400, "invalid")


def test_a_track_is_changed_with_json_only(auth_client, wav_file):
    track = create_track(auth_client, wav_file.read_bytes())
    response = auth_client.patch(
        f"{LIST_URL}{track['id']}/", {"title": "x"}, format="multipart"
    )
    assert_error(response, 415, "unsupported_media_type")
    response = auth_client.generic(
        "PATCH", f"{LIST_URL}{track['id']}/", "[]", content_type="application/json"
    )
    assert_error(response, 400, "invalid")


def test_wrong_credentials_are_a_401_with_a_challenge(api_client, user):
    response = api_client.post(
        "/api/v1/auth/token", {"username": "alice", "password": "nope"}
    )
    assert_error(response, 401, "invalid_credentials")
    assert response["WWW-Authenticate"] == "Token"
    user.is_active = False
    user.save()
    response = api_client.post(
        "/api/v1/auth/token", {"username": "alice", "password": "alice-pass-123"}
    )
    assert_error(response, 401, "invalid_credentials")


def test_the_schema_tags_describes_and_links_every_operation(api_client):
    schema = api_client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    tags = {tag["name"] for tag in schema["tags"]}
    assert tags == {"veza", "tracks", "streaming", "webrtc"}
    operations = {
        operation["operationId"]: operation
        for path in schema["paths"].values()
        for operation in path.values()
    }
    for operation_id, operation in operations.items():
        assert len(operation["tags"]) == 1, operation_id
        assert operation["tags"][0] in tags, operation_id
        assert operation.get("summary"), operation_id
        assert operation.get("description"), operation_id
        for status, response in operation["responses"].items():
            if status.startswith(("4", "5")):
                body = response["content"]["application/json"]["schema"]
                assert body == {"$ref": "#/components/schemas/ErrorOutput"}
    links = operations["tracks_upload"]["responses"]["201"]["links"]
    assert {link["operationId"] for link in links.values()} == {
        "tracks_retrieve",
        "tracks_update",
        "tracks_delete",
        "tracks_stream",
        "tracks_download",
        "tracks_hls",
        "tracks_waveform",
    }
    for link in links.values():
        assert link["operationId"] in operations
        assert link["parameters"] == {"track_id": "$response.body#/id"}
