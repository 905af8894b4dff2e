"""Attacks an adversarial review saw refused, kept refused over the real routes."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.audio import make_audio
from tests.conftest import token_client
from tests.tracks.helpers import LIST_URL, assert_error, create_track, upload
from tracks.models import Track
from veza.asgi import application
from webrtc.models import Call

pytestmark = pytest.mark.django_db

FOREIGN = "https://evil.example"


def relative(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def playback_url(client, track_id: str, kind: str = "stream") -> str:
    response = client.get(f"/api/v1/tracks/{track_id}/{kind}")
    assert response.status_code == 200, response.content
    return relative(response.json()["url"])


def body_of(response) -> bytes:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content)
    return response.content


def leftover_files(settings) -> list[Path]:
    """Every file in storage and in the upload staging area."""
    roots = (Path(settings.MEDIA_ROOT), Path(settings.VAR_DIR) / "uploads")
    return [
        p for root in roots if root.exists() for p in root.rglob("*") if p.is_file()
    ]


@pytest.fixture
def private_track(auth_client, wav_file) -> dict:
    """Alice's track; private is the default visibility."""
    track = create_track(auth_client, wav_file.read_bytes())
    assert track["visibility"] == "private"
    return track


# Private tracks -----------------------------------------------------------------
# Reading, streaming and HLS of another user's private track are covered in
# tests/tracks/test_crud_api.py, tests/tracks/test_playback.py and
# tests/streaming/test_serving.py; downloading and writing were not.


@pytest.mark.parametrize("query", ["", "?redirect=1"])
def test_another_user_cannot_download_a_private_track(
    other_client, private_track, query
):
    response = other_client.get(f"/api/v1/tracks/{private_track['id']}/download{query}")
    assert_error(response, 404, "track_not_found")
    # Not even a URL to the bytes: no redirect and no origin link.
    assert "Location" not in response
    assert b"/origin/" not in response.content


def test_another_user_cannot_change_or_delete_a_private_track(
    other_client, private_track, settings
):
    url = f"{LIST_URL}{private_track['id']}/"
    # 404, not 403: a private track of someone else does not exist for you.
    response = other_client.patch(url, {"visibility": "public"}, format="json")
    assert_error(response, 404, "track_not_found")
    assert_error(other_client.delete(url), 404, "track_not_found")
    track = Track.objects.get(pk=private_track["id"])
    assert track.visibility == "private"
    assert (Path(settings.MEDIA_ROOT) / track.storage_key).exists()


# Tokens -------------------------------------------------------------------------
# Tampered, expired and other-kind origin tokens: tests/tracks/test_playback.py;
# HLS directory tokens: tests/streaming/test_serving.py; inactive users' API
# tokens: tests/platform/test_api_platform.py.


def test_an_origin_token_opens_only_the_track_it_was_signed_for(
    other_client, api_client, private_track, wav_file
):
    # Bob's own URL, with Alice's private track id swapped into the path.
    bobs = create_track(other_client, wav_file.read_bytes(), visibility="public")
    url = playback_url(other_client, bobs["id"])
    forged = url.replace(bobs["id"], private_track["id"])
    assert forged != url
    for kind in ("stream", "download"):
        response = api_client.get(forged.replace("/stream?", f"/{kind}?"))
        assert_error(response, 403, "invalid_token")
        assert wav_file.read_bytes()[-1000:] not in response.content


def test_the_api_token_of_a_deleted_user_is_refused(user):
    client = token_client(user)
    assert client.get(LIST_URL).status_code == 200
    assert client.get(LIST_URL).status_code == 200  # now from the token cache
    user.delete()
    assert_error(client.get(LIST_URL), 401, "authentication_failed")
    assert not Token.objects.exists()


def deactivate_in_bulk(user) -> None:
    # A bulk update (a directory sync, a script) sends no signal, so nothing
    # revokes the user's tokens: authentication itself must check the user.
    type(user).objects.filter(pk=user.pk).update(is_active=False)


def test_the_api_token_of_a_user_deactivated_in_bulk_is_refused(user):
    client = token_client(user)
    deactivate_in_bulk(user)
    assert_error(client.get(LIST_URL), 401, "authentication_failed")


# Path tricks --------------------------------------------------------------------
# The HLS origin's: tests/streaming/test_serving.py; directories in upload
# file names: tests/tracks/test_upload_api.py.


@pytest.mark.parametrize(
    "trick",
    [
        "{track}/stream/../../../../etc/passwd?{query}",
        "{track}/stream/%2e%2e/%2e%2e/%2e%2e/etc/passwd?{query}",
        "{track}/..%2f..%2f..%2fetc%2fpasswd?{query}",
        "{track}/%2e%2e?{query}",
        "{track}/..?{query}",
        "{track}/stream/?{query}",
        "{track}/stream%2f..%2fdownload?{query}",
        "..%2f..%2fveza%2fsettings%2fbase.py/stream?{query}",
        "{track}%2f..%2f{track}/stream?{query}",
    ],
)
def test_dot_segments_and_escapes_in_origin_paths_reach_no_file(
    auth_client, api_client, private_track, wav_file, trick
):
    url = playback_url(auth_client, private_track["id"])
    query = url.split("?", 1)[1]
    attack = "/origin/tracks/" + trick.format(track=private_track["id"], query=query)
    response = api_client.get(attack)
    assert_error(response, 404, "not_found")
    assert wav_file.read_bytes()[-1000:] not in body_of(response)
    assert b"root:" not in body_of(response)


def multipart_with_raw_name(disposition: str, content: bytes) -> bytes:
    """A multipart body whose file part's Content-Disposition is exactly
    `disposition`: the test client would clean the name before sending."""
    return (
        b"--BOUNDARY\r\nContent-Disposition: "
        + disposition.encode()
        + b"\r\nContent-Type: audio/wav\r\n\r\n"
        + content
        + b"\r\n--BOUNDARY--\r\n"
    )


@pytest.mark.parametrize(
    ("disposition", "label"),
    [
        ('filename="ev\x01il\x1b[31m\x7f.wav"', "evil[31m.wav"),
        ('filename="..&#47;..&#47;ev&#10;il&#13;.wav"', "evil.wav"),
        ("filename*=UTF-8''..%2F..%2Fev%0D%0Ail%00%E2%80%AE.wav", "evil.wav"),
    ],
    ids=["raw", "html-entities", "rfc2231"],
)
def test_control_characters_in_an_upload_file_name_are_dropped(
    auth_client, settings, wav_file, disposition, label
):
    response = auth_client.generic(
        "POST",
        LIST_URL,
        multipart_with_raw_name(
            f'form-data; name="file"; {disposition}', wav_file.read_bytes()
        ),
        content_type="multipart/form-data; boundary=BOUNDARY",
    )
    assert response.status_code == 201, response.content
    # Directories and control characters (escaped or not) are gone: the
    # name is a label, safe to show and to put in a header.
    assert response.json()["original_filename"] == label
    track = Track.objects.get()
    # The stored name is ours, never the client's.
    assert leftover_files(settings) == [Path(settings.MEDIA_ROOT) / track.storage_key]
    # Nor does the name break the download's headers.
    download = auth_client.get(playback_url(auth_client, track.pk, "download"))
    assert download.status_code == 200
    assert download["Content-Disposition"].isprintable()


# Uploads ------------------------------------------------------------------------
# Non-audio bytes under an audio name or type, empty files and oversize
# uploads: tests/tracks/test_upload_api.py.


def png_header() -> bytes:
    return (
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01"
        b"\x08\x02\x00\x00\x00\x90wS\xde"
    )


HTML = b"<!DOCTYPE html><html><script>alert(document.cookie)</script></html>\n" * 20


@pytest.mark.parametrize(
    ("prefix", "audio"),
    [
        (png_header(), "wav"),
        (b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", "wav"),
        (b"PK\x03\x04" + bytes(26), "wav"),
        (b"<?php system($_GET['c']); ?>", "wav"),
        (HTML, "wav"),
    ],
    ids=["png", "gif", "zip", "php", "html"],
)
def test_polyglots_of_another_format_and_audio_are_refused(
    auth_client, settings, audio_dir, prefix, audio
):
    song = make_audio(audio_dir / f"poly.{audio}", fmt=audio, seconds=1).read_bytes()
    response = upload(
        auth_client, prefix + song, name=f"song.{audio}", content_type="audio/wav"
    )
    assert_error(response, 415, "not_audio")
    assert not Track.objects.exists()
    assert leftover_files(settings) == []


@pytest.mark.parametrize(
    "prefix", [HTML, b"%PDF-1.4\n1 0 obj<<>>endobj\n"], ids=["html", "pdf"]
)
def test_polyglots_of_a_document_and_mp3_are_refused(
    auth_client, settings, audio_dir, prefix
):
    song = make_audio(audio_dir / "poly.mp3", fmt="mp3", seconds=1).read_bytes()
    response = upload(
        auth_client, prefix + song, name="song.mp3", content_type="audio/mpeg"
    )
    assert_error(response, 415, "not_audio")
    assert not Track.objects.exists()
    assert leftover_files(settings) == []


def test_audio_named_like_a_page_is_served_and_saved_only_as_audio(
    auth_client, audio_dir
):
    """Real audio uploaded as `page.html`: served as audio/mpeg, never sniffed,
    and downloaded under the stored format's extension, so a browser never
    saves a page it would then open."""
    song = make_audio(audio_dir / "named.mp3", fmt="mp3", seconds=1).read_bytes()
    track = create_track(auth_client, song, name="page.html")
    for kind in ("stream", "download"):
        response = auth_client.get(playback_url(auth_client, track["id"], kind))
        assert response.status_code == 200
        assert response["Content-Type"] == "audio/mpeg"
        assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Disposition"] == 'attachment; filename="page.mp3"'


# CSRF ---------------------------------------------------------------------------
# A browser page on another site can make the user's browser send the session
# cookie (and the CSRF cookie) with a form or fetch, but cannot read the CSRF
# token: every such write must be refused. No existing test covered these.


def browser(client: Client, user, origin: str | None) -> Client:
    """`client` as the user's browser: signed in, holding a CSRF cookie, and
    sending the attacker page's Origin (None: a browser that sends none)."""
    client.force_login(user)
    assert client.get("/calls/login/").status_code == 200  # sets the cookie
    assert "csrftoken" in client.cookies
    if origin is not None:
        client.defaults["HTTP_ORIGIN"] = origin
    return client


def assert_csrf_refused(response) -> None:
    assert_error(response, 403, "permission_denied")
    assert response.json()["error"]["message"].startswith("CSRF Failed")


@pytest.mark.parametrize("origin", [None, FOREIGN])
@pytest.mark.parametrize("path", [LIST_URL, LIST_URL.rstrip("/")])
def test_a_session_upload_without_the_csrf_token_is_refused(
    user, settings, wav_file, origin, path
):
    client = browser(APIClient(enforce_csrf_checks=True), user, origin)
    song = SimpleUploadedFile("song.wav", wav_file.read_bytes(), "audio/wav")
    response = client.post(
        path, {"file": song, "visibility": "public"}, format="multipart"
    )
    assert_csrf_refused(response)
    assert not Track.objects.exists()
    assert leftover_files(settings) == []


@pytest.mark.parametrize("origin", [None, FOREIGN])
def test_session_changes_to_a_track_without_the_csrf_token_are_refused(
    user, auth_client, private_track, origin
):
    client = browser(APIClient(enforce_csrf_checks=True), user, origin)
    url = f"{LIST_URL}{private_track['id']}/"
    assert_csrf_refused(client.patch(url, {"visibility": "public"}, format="json"))
    assert_csrf_refused(client.delete(url))
    assert Track.objects.get(pk=private_track["id"]).visibility == "private"
    # The refusal is the CSRF check's: the same browser with the token passes.
    client.defaults.pop("HTTP_ORIGIN", None)
    response = client.patch(
        url,
        {"title": "Mine"},
        format="json",
        HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value,
    )
    assert response.status_code == 200, response.content


@pytest.mark.parametrize("origin", [None, FOREIGN])
def test_session_tickets_and_token_revocation_need_the_csrf_token(
    user, auth_client, origin
):
    client = browser(APIClient(enforce_csrf_checks=True), user, origin)
    assert_csrf_refused(client.post("/api/v1/calls/ticket"))
    assert_csrf_refused(client.delete("/api/v1/auth/tokens"))
    assert Token.objects.filter(user=user).exists()  # auth_client's token


@pytest.mark.parametrize("origin", [None, FOREIGN])
@pytest.mark.parametrize("path", ["/admin/login/", "/calls/login/"])
def test_login_forms_without_the_csrf_token_are_refused(staff_user, origin, path):
    # Login CSRF: signing the victim in to the attacker's account.
    client = Client(enforce_csrf_checks=True)
    assert client.get(path).status_code == 200
    assert "csrftoken" in client.cookies
    headers = {} if origin is None else {"HTTP_ORIGIN": origin}
    response = client.post(
        path, {"username": "staff", "password": "staff-pass-123"}, **headers
    )
    assert response.status_code == 403
    assert b"CSRF verification failed" in response.content
    assert "_auth_user_id" not in client.session


@pytest.mark.parametrize("origin", [None, FOREIGN])
def test_admin_changes_without_the_csrf_token_are_refused(
    staff_user, private_track, origin
):
    client = browser(Client(enforce_csrf_checks=True), staff_user, origin)
    response = client.post(
        f"/admin/tracks/track/{private_track['id']}/delete/", {"post": "yes"}
    )
    assert response.status_code == 403
    assert b"CSRF verification failed" in response.content
    assert Track.objects.filter(pk=private_track["id"]).exists()


# CORS ---------------------------------------------------------------------------
# Preflights to the API and the HLS origin's CORS: tests/platform/
# test_api_platform.py and tests/streaming/test_serving.py. Here the answers
# themselves, to a signed-in browser, which a foreign page must not read.


@pytest.mark.parametrize("allowed", [[], ["https://app.example"]])
def test_api_answers_grant_no_cors_to_a_foreign_origin(
    client, user, auth_client, private_track, settings, allowed
):
    settings.CORS_ALLOWED_ORIGINS = allowed
    client.force_login(user)
    track = private_track["id"]
    for path in (
        LIST_URL,
        f"{LIST_URL}{track}/",
        f"/api/v1/tracks/{track}/stream",
        "/api/v1/auth/tokens",
        playback_url(auth_client, track),
    ):
        response = client.get(path, HTTP_ORIGIN=FOREIGN)
        assert response.status_code == 200, (path, response.content)
        assert "Access-Control-Allow-Origin" not in response, path
        assert "Access-Control-Allow-Credentials" not in response, path
    preflight = client.options(
        LIST_URL,
        HTTP_ORIGIN=FOREIGN,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="x-csrftoken",
    )
    assert "Access-Control-Allow-Origin" not in preflight
    assert "Access-Control-Allow-Methods" not in preflight


# The signaling websocket ----------------------------------------------------------
# A foreign Origin, an unauthenticated socket and malformed frames:
# tests/webrtc/test_consumers.py and tests/webrtc/test_signaling_abuse.py. Here
# the foreign page with the signed-in user's session cookie (cross-site
# websocket hijacking), the shape the attack takes in a browser.


def test_a_foreign_page_cannot_open_a_socket_with_the_users_session(user):
    client = Client()
    client.force_login(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}"

    async def handshake(origin: bytes) -> tuple[bool, object]:
        headers = [(b"origin", origin), (b"host", b"testserver")]
        headers.append((b"cookie", cookie.encode()))
        socket = WebsocketCommunicator(application, "/ws/calls/", headers=headers)
        connected, detail = await socket.connect()
        if connected:
            await socket.disconnect()
        return connected, detail

    connected, _ = async_to_sync(handshake)(FOREIGN.encode())
    assert connected is False
    assert not Call.objects.exists()
    # The same cookie from this site's own page opens the socket.
    connected, _ = async_to_sync(handshake)(b"http://testserver")
    assert connected is True
