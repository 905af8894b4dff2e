"""Stream and download URLs for local tracks, and the origin that serves them."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.tracks.helpers import assert_error, create_track

pytestmark = pytest.mark.django_db


def stream_url(client, track_id: str, kind: str = "stream") -> dict:
    response = client.get(f"/api/v1/tracks/{track_id}/{kind}")
    assert response.status_code == 200, response.content
    return response.json()


def relative(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


@pytest.fixture
def track(auth_client, wav_file) -> dict:
    return create_track(auth_client, wav_file.read_bytes(), name="Tone – ß.wav")


def test_stream_url_for_a_local_track_is_an_origin_token_url(
    auth_client, track, settings
):
    body = stream_url(auth_client, track["id"])
    assert body["source"] == "origin"
    assert body["url"].startswith(
        f"http://testserver/origin/tracks/{track['id']}/stream?"
    )
    query = parse_qs(urlsplit(body["url"]).query)
    assert set(query) == {"expires", "token"}
    expires = int(query["expires"][0])
    assert abs(expires - (time.time() + settings.TRACK_URL_TTL)) < 5
    assert body["expires_at"].startswith(time.strftime("%Y", time.gmtime(expires)))


def test_origin_serves_the_whole_file(auth_client, track, wav_file):
    response = auth_client.get(relative(stream_url(auth_client, track["id"])["url"]))
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == wav_file.read_bytes()
    assert response["Content-Type"] == "audio/wav"
    assert response["Content-Length"] == str(wav_file.stat().st_size)
    assert response["Accept-Ranges"] == "bytes"
    assert response["ETag"] == f'"{track["sha256"]}"'
    assert response["Content-Disposition"] == "inline"


def test_download_names_the_file_as_an_attachment(auth_client, track):
    response = auth_client.get(
        relative(stream_url(auth_client, track["id"], "download")["url"])
    )
    assert response.status_code == 200
    assert response["Content-Disposition"] == (
        "attachment; filename*=utf-8''Tone%20%E2%80%93%20%C3%9F.wav"
    )


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("bytes=0-99", 0, 99),
        ("bytes=1000-", 1000, None),
        ("bytes=-500", None, None),
        ("bytes=100-99999999", 100, None),
    ],
)
def test_origin_answers_ranges_with_206(
    auth_client, track, wav_file, header, first, last
):
    content = wav_file.read_bytes()
    size = len(content)
    if header == "bytes=-500":
        first, last = size - 500, size - 1
    last = size - 1 if last is None else last
    url = relative(stream_url(auth_client, track["id"])["url"])
    response = auth_client.get(url, HTTP_RANGE=header)
    assert response.status_code == 206
    assert b"".join(response.streaming_content) == content[first : last + 1]
    assert response["Content-Range"] == f"bytes {first}-{last}/{size}"
    assert response["Content-Length"] == str(last - first + 1)


def test_unsatisfiable_range_is_416(auth_client, track, wav_file):
    url = relative(stream_url(auth_client, track["id"])["url"])
    response = auth_client.get(url, HTTP_RANGE=f"bytes={wav_file.stat().st_size}-")
    assert_error(response, 416, "range_not_satisfiable")
    assert response["Content-Range"] == f"bytes */{wav_file.stat().st_size}"


def test_stale_if_range_gets_the_whole_file(auth_client, track):
    url = relative(stream_url(auth_client, track["id"])["url"])
    response = auth_client.get(url, HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE='"stale"')
    assert response.status_code == 200


def test_matching_etag_is_304(auth_client, track):
    url = relative(stream_url(auth_client, track["id"])["url"])
    response = auth_client.get(url, HTTP_IF_NONE_MATCH=f'"{track["sha256"]}"')
    assert response.status_code == 304
    assert response.content == b""


def test_tampered_or_expired_tokens_are_403(auth_client, track, settings):
    url = relative(stream_url(auth_client, track["id"])["url"])
    path, query = url.split("?")
    params = parse_qs(query)
    token, expires = params["token"][0], params["expires"][0]
    flipped = ("A" if token[0] != "A" else "B") + token[1:]
    cases = [
        f"{path}?expires={expires}&token={flipped}",
        f"{path}?expires={int(expires) + 1}&token={token}",
        f"{path.replace('/stream', '/download')}?expires={expires}&token={token}",
        f"{path}?expires={expires}",
        f"{path}?expires=soon&token={token}",
    ]
    for case in cases:
        assert_error(auth_client.get(case), 403, "invalid_token")
    settings.TRACK_URL_TTL = -10
    expired = relative(stream_url(auth_client, track["id"])["url"])
    assert_error(auth_client.get(expired), 403, "invalid_token")


def test_redirect_parameter_answers_302(auth_client, track):
    response = auth_client.get(f"/api/v1/tracks/{track['id']}/stream?redirect=1")
    assert response.status_code == 302
    assert response["Location"].startswith(
        f"http://testserver/origin/tracks/{track['id']}/stream?"
    )


def test_accel_redirect_hands_the_bytes_to_nginx(auth_client, track, settings):
    settings.VEZA_ACCEL_REDIRECT_PREFIX = "/_protected/"
    response = auth_client.get(relative(stream_url(auth_client, track["id"])["url"]))
    from tracks.models import Track

    key = Track.objects.get(pk=track["id"]).storage_key
    assert response.status_code == 200
    assert response["X-Accel-Redirect"] == f"/_protected/{key}"
    assert response["Content-Type"] == "audio/wav"
    assert response.content == b""


def test_private_tracks_play_only_for_their_owner(
    auth_client, other_client, api_client, track
):
    assert auth_client.get(f"/api/v1/tracks/{track['id']}/stream").status_code == 200
    assert_error(
        other_client.get(f"/api/v1/tracks/{track['id']}/stream"), 404, "track_not_found"
    )
    assert_error(
        api_client.get(f"/api/v1/tracks/{track['id']}/stream"), 401, "not_authenticated"
    )


def test_public_tracks_play_for_other_users(auth_client, other_client, wav_file):
    track = create_track(auth_client, wav_file.read_bytes(), visibility="public")
    assert stream_url(other_client, track["id"])["source"] == "origin"


def test_unknown_kind_is_404(auth_client, track):
    assert_error(
        auth_client.get(f"/origin/tracks/{track['id']}/lyrics"), 404, "not_found"
    )


@pytest.mark.django_db(transaction=True)
def test_many_clients_seeking_at_once_get_their_own_bytes(
    live_server, settings, tmp_path, audio_dir
):
    from django.contrib.auth import get_user_model

    from tests.audio import make_audio
    from tests.conftest import token_client

    owner = get_user_model().objects.create_user("seeker", password="seek-pass-123")
    content = make_audio(audio_dir / "seek.wav", fmt="wav", seconds=20).read_bytes()
    client = token_client(owner)
    track = create_track(client, content)
    url = stream_url(client, track["id"])["url"].replace(
        "http://testserver", live_server.url
    )
    size = len(content)
    ranges = [
        (i * size // 16, min(size - 1, i * size // 16 + 65535)) for i in range(16)
    ]

    def fetch(r: tuple[int, int]) -> bool:
        response = requests.get(
            url, headers={"Range": f"bytes={r[0]}-{r[1]}"}, timeout=30
        )
        return (
            response.status_code == 206 and response.content == content[r[0] : r[1] + 1]
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert all(pool.map(fetch, ranges * 2))


def test_a_repeated_stream_request_needs_no_query(
    auth_client, track, django_assert_num_queries
):
    first = auth_client.get(f"/api/v1/tracks/{track['id']}/stream").json()
    with django_assert_num_queries(0):
        response = auth_client.get(f"/api/v1/tracks/{track['id']}/stream")
    assert response.status_code == 200
    # The same URL, reused for half its lifetime.
    assert response.json() == first


def test_visibility_changes_and_deletes_apply_at_once(
    auth_client, other_client, wav_file, django_capture_on_commit_callbacks
):
    track = create_track(auth_client, wav_file.read_bytes(), visibility="public")
    url = f"/api/v1/tracks/{track['id']}/stream"
    assert other_client.get(url).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        auth_client.patch(
            f"/api/v1/tracks/{track['id']}/", {"visibility": "private"}, format="json"
        )
    assert_error(other_client.get(url), 404, "track_not_found")
    assert auth_client.get(url).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        auth_client.delete(f"/api/v1/tracks/{track['id']}/")
    assert_error(auth_client.get(url), 404, "track_not_found")


def forget_cached_token(client) -> None:
    from rest_framework.authtoken.models import Token

    key = client._credentials["HTTP_AUTHORIZATION"].removeprefix("Token ")
    Token.objects.get(key=key).save()  # saving a token drops its cache entry


@pytest.mark.parametrize("query", ["", "?redirect=1", "?redirect=0&x=1"])
def test_a_cached_token_gets_the_same_answer(auth_client, track, query):
    url = f"/api/v1/tracks/{track['id']}/stream{query}"
    forget_cached_token(auth_client)
    looked_up = auth_client.get(url)
    cached = auth_client.get(url)
    assert cached.status_code == looked_up.status_code
    assert cached.content == looked_up.content
    assert dict(cached.items()) == dict(looked_up.items())
    assert cached["Allow"] == "GET, HEAD, OPTIONS"


def test_errors_for_a_cached_token_are_the_same(auth_client, other_client, track):
    url = f"/api/v1/tracks/{track['id']}/stream"
    looked_up = other_client.get(url)  # the private track of another user
    cached = other_client.get(url)
    assert_error(cached, 404, "track_not_found")
    assert cached.content == looked_up.content


def test_sessions_head_and_options(client, user, auth_client, track):
    url = f"/api/v1/tracks/{track['id']}/stream"
    client.login(username="alice", password="alice-pass-123")
    assert client.get(url).json() == auth_client.get(url).json()
    assert auth_client.head(url).status_code == 200
    assert auth_client.options(url).status_code == 200


def test_a_deleted_token_stops_playing_at_once(auth_client, user, track):
    from rest_framework.authtoken.models import Token

    url = f"/api/v1/tracks/{track['id']}/stream"
    assert auth_client.get(url).status_code == 200  # the token is cached
    Token.objects.filter(user=user).delete()
    assert_error(auth_client.get(url), 401, "authentication_failed")


@pytest.mark.parametrize("keyword", ["token", "TOKEN"])
def test_other_spellings_of_the_header_are_accepted(
    api_client, auth_client, track, keyword
):
    key = auth_client._credentials["HTTP_AUTHORIZATION"].removeprefix("Token ")
    api_client.credentials(HTTP_AUTHORIZATION=f"{keyword} {key}")
    assert stream_url(api_client, track["id"]) == stream_url(auth_client, track["id"])


@pytest.mark.parametrize("kind", ["stream", "download"])
def test_going_private_revokes_the_urls_handed_out(
    auth_client, other_client, api_client, wav_file, kind
):
    track = create_track(auth_client, wav_file.read_bytes(), visibility="public")
    listener = relative(stream_url(other_client, track["id"], kind)["url"])
    assert api_client.get(listener).status_code == 200
    auth_client.patch(
        f"/api/v1/tracks/{track['id']}/", {"visibility": "private"}, format="json"
    )
    assert_error(api_client.get(listener), 403, "invalid_token")
    owner = relative(stream_url(auth_client, track["id"], kind)["url"])
    assert api_client.get(owner).status_code == 200
    # Shared again: the listener's old URL works, the owner's private one not.
    auth_client.patch(
        f"/api/v1/tracks/{track['id']}/", {"visibility": "unlisted"}, format="json"
    )
    assert api_client.get(listener).status_code == 200
    assert_error(api_client.get(owner), 403, "invalid_token")
    auth_client.delete(f"/api/v1/tracks/{track['id']}/")
    assert_error(api_client.get(listener), 404, "track_not_found")
