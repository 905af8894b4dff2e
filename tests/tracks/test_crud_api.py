"""Listing, reading, changing and deleting tracks."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from tests.conftest import token_client
from tests.tracks.helpers import LIST_URL, assert_error, create_track
from tracks.models import Track

pytestmark = pytest.mark.django_db


def test_list_shows_own_and_public_tracks(auth_client, other_client, wav_file):
    content = wav_file.read_bytes()
    mine_private = create_track(auth_client, content, title="mine private")
    mine_public = create_track(
        auth_client, content, title="mine public", visibility="public"
    )
    theirs_public = create_track(
        other_client, content, title="theirs public", visibility="public"
    )
    create_track(other_client, content, title="theirs private")
    create_track(other_client, content, title="theirs unlisted", visibility="unlisted")
    body = auth_client.get(LIST_URL).json()
    assert set(body) == {"next", "previous", "results"}
    assert [t["id"] for t in body["results"]] == [
        theirs_public["id"],
        mine_public["id"],
        mine_private["id"],
    ]


def test_list_is_paginated_by_cursor_both_ways(auth_client, wav_file):
    content = wav_file.read_bytes()
    made = [create_track(auth_client, content, title=f"t{i}")["id"] for i in range(5)]
    newest_first = made[::-1]
    seen: list[str] = []
    page = auth_client.get(LIST_URL, {"page_size": 2}).json()
    assert page["previous"] is None
    pages = [page]
    while True:
        seen += [t["id"] for t in page["results"]]
        if page["next"] is None:
            break
        page = auth_client.get(page["next"]).json()
        pages.append(page)
    assert seen == newest_first
    assert [len(p["results"]) for p in pages] == [2, 2, 1]
    # Back from the last page.
    back = auth_client.get(pages[-1]["previous"]).json()
    assert [t["id"] for t in back["results"]] == newest_first[2:4]
    # A track uploaded meanwhile does not shift the pages already read.
    create_track(auth_client, content, title="newer")
    again = auth_client.get(pages[0]["next"]).json()
    assert [t["id"] for t in again["results"]] == newest_first[2:4]


def test_list_query_count_does_not_grow_with_tracks(
    user, django_assert_num_queries, wav_file
):
    owners = [user, *(get_user_model().objects.create_user(f"u{i}") for i in range(4))]
    for owner in owners:
        Track.objects.bulk_create(
            Track(
                owner=owner,
                title=f"{owner.username} {i}",
                visibility="public",
                original_filename="x.wav",
                mime_type="audio/wav",
                size_bytes=1,
                sha256="0" * 64,
                duration_seconds=1.0,
            )
            for i in range(5)
        )
    client = token_client(user)
    # Token lookup (with user) and the page: no count.
    with django_assert_num_queries(2):
        response = client.get(LIST_URL)
    assert len(response.json()["results"]) == 25
    assert {t["owner"] for t in response.json()["results"]} == {
        o.username for o in owners
    }


def test_detail_hides_private_tracks_of_others(auth_client, other_client, wav_file):
    track = create_track(auth_client, wav_file.read_bytes())
    assert auth_client.get(f"{LIST_URL}{track['id']}/").json()["id"] == track["id"]
    assert_error(other_client.get(f"{LIST_URL}{track['id']}/"), 404, "track_not_found")


def test_unlisted_tracks_open_by_id(auth_client, other_client, wav_file):
    track = create_track(auth_client, wav_file.read_bytes(), visibility="unlisted")
    assert other_client.get(f"{LIST_URL}{track['id']}/").status_code == 200


def test_owner_can_change_title_and_visibility(auth_client, wav_file):
    track = create_track(auth_client, wav_file.read_bytes())
    response = auth_client.patch(
        f"{LIST_URL}{track['id']}/",
        {"title": "Renamed", "visibility": "public"},
        format="json",
    )
    assert response.status_code == 200
    assert response.json()["title"] == "Renamed"
    assert response.json()["visibility"] == "public"
    assert Track.objects.get().title == "Renamed"


def test_patch_rejects_bad_values(auth_client, wav_file):
    track = create_track(auth_client, wav_file.read_bytes())
    response = auth_client.patch(
        f"{LIST_URL}{track['id']}/", {"visibility": "world"}, format="json"
    )
    assert_error(response, 400, "invalid")
    response = auth_client.patch(
        f"{LIST_URL}{track['id']}/", {"title": ""}, format="json"
    )
    assert_error(response, 400, "invalid")
    response = auth_client.patch(
        f"{LIST_URL}{track['id']}/", "{not json", content_type="application/json"
    )
    assert_error(response, 400, "parse_error")


def test_others_cannot_change_or_delete_a_public_track(
    auth_client, other_client, wav_file
):
    track = create_track(auth_client, wav_file.read_bytes(), visibility="public")
    response = other_client.patch(
        f"{LIST_URL}{track['id']}/", {"title": "mine now"}, format="json"
    )
    assert_error(response, 403, "not_track_owner")
    assert_error(
        other_client.delete(f"{LIST_URL}{track['id']}/"), 403, "not_track_owner"
    )
    assert Track.objects.get().title != "mine now"


def test_delete_removes_row_and_bytes_after_commit(
    auth_client, settings, wav_file, django_capture_on_commit_callbacks
):
    track = create_track(auth_client, wav_file.read_bytes())
    key = Track.objects.get().storage_key
    stored = Path(settings.MEDIA_ROOT) / key
    assert stored.exists()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = auth_client.delete(f"{LIST_URL}{track['id']}/")
    assert response.status_code == 204
    assert stored.exists(), "bytes must outlive the transaction"
    for callback in callbacks:
        callback()
    assert not stored.exists()
    assert Track.objects.count() == 0


def test_unknown_and_malformed_ids_are_404(auth_client):
    assert_error(
        auth_client.get(f"{LIST_URL}00000000-0000-0000-0000-000000000000/"),
        404,
        "track_not_found",
    )
    assert_error(auth_client.get(f"{LIST_URL}not-a-uuid/"), 404, "not_found")
