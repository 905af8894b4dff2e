"""Tickets, call history, the admin, the call page and the metrics."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.cache import cache
from django.utils import timezone

from webrtc import services
from webrtc.models import Call, CallState, EndReason

pytestmark = pytest.mark.django_db


def make_call(caller, callee, **fields) -> Call:
    defaults = {
        "state": CallState.ENDED,
        "end_reason": EndReason.HANGUP,
        "ended_at": timezone.now(),
    }
    return Call.objects.create(caller=caller, callee=callee, **{**defaults, **fields})


def test_a_ticket_is_issued_to_an_authenticated_user(auth_client, user):
    response = auth_client.post("/api/v1/calls/ticket")
    assert response.status_code == 201
    body = response.json()
    assert body["expires_in"] == 60
    assert body["url"] == f"/ws/calls/?ticket={body['ticket']}"
    assert cache.get(f"webrtc:ticket:{body['ticket']}")[0] == user.pk


def test_anonymous_users_get_no_ticket(api_client):
    response = api_client.post("/api/v1/calls/ticket")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_call_history_lists_own_calls_newest_first(
    auth_client, user, other_user, staff_user, django_assert_num_queries
):
    old = make_call(user, other_user)
    Call.objects.filter(pk=old.pk).update(
        created_at=timezone.now() - dt.timedelta(hours=1)
    )
    new = make_call(other_user, user, end_reason=EndReason.REJECTED)
    make_call(other_user, staff_user)
    # The token (with its user) and the page; no count, nothing per row.
    with django_assert_num_queries(2):
        body = auth_client.get("/api/v1/calls/").json()
    assert body["next"] is None
    assert [c["id"] for c in body["results"]] == [str(new.pk), str(old.pk)]
    first = body["results"][0]
    assert first["caller"] == {"id": other_user.pk, "username": "bob"}
    assert first["end_reason"] == "rejected"


def test_call_history_needs_authentication(api_client):
    assert api_client.get("/api/v1/calls/").status_code == 401


def test_staff_see_call_history_in_the_admin(client, staff_user, user, other_user):
    make_call(user, other_user)
    client.force_login(staff_user)
    response = client.get("/admin/webrtc/call/")
    assert response.status_code == 200
    assert "alice" in response.content.decode()
    assert client.get("/admin/webrtc/call/add/").status_code == 403


def test_the_call_page_needs_a_login(client, user, other_user):
    response = client.get("/calls/")
    assert response.status_code == 302
    assert response["Location"].startswith("/calls/login/")
    login = client.post(
        "/calls/login/", {"username": "alice", "password": "alice-pass-123"}
    )
    assert login.status_code == 302
    page = client.get("/calls/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "webrtc/calls.js" in html
    assert f'data-user-id="{other_user.pk}"' in html


def test_stale_ringing_calls_end_when_a_party_is_invited_again(user, other_user):
    stale = Call.objects.create(caller=user, callee=other_user, caller_channel="gone")
    Call.objects.filter(pk=stale.pk).update(
        created_at=timezone.now() - dt.timedelta(minutes=5)
    )
    outcome = services.call_invite(
        caller=user,
        callee_id=other_user.pk,
        channel="c1",
        sdp={"type": "offer", "sdp": "v=0"},
        ring_timeout=45,
    )
    assert outcome.call.state == CallState.RINGING
    stale.refresh_from_db()
    assert stale.end_reason == EndReason.INVITE_TIMEOUT
    assert [d.frame["type"] for d in outcome.deliveries] == [
        "call.ended",
        "call.ended",
        "call.incoming",
        "call.ringing",
    ]


def test_call_metrics_are_exported(client, user, other_user):
    services.call_invite(
        caller=user,
        callee_id=other_user.pk,
        channel="c1",
        sdp={"type": "offer", "sdp": "v=0"},
        ring_timeout=45,
    )
    text = client.get("/metrics").content.decode()
    for name in (
        "veza_webrtc_calls_total",
        "veza_webrtc_connections",
        "veza_webrtc_signaling_messages_total",
        "veza_webrtc_answer_seconds",
    ):
        assert name in text


def test_the_call_page_says_when_there_is_nobody_to_call(client, user):
    client.force_login(user)
    html = client.get("/calls/").content.decode()
    assert '<p id="nobody">Nobody else has an account yet' in html
    assert "<option" not in html
    assert '<select id="callee" aria-label="Person to call" hidden>' in html
