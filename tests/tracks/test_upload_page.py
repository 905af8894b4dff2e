"""The upload page: signed-in users only, a strict CSP, what the script reads."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

pytestmark = pytest.mark.django_db

UPLOAD_URL = "/upload/"


def test_the_page_lives_at_upload():
    assert reverse("tracks:upload") == UPLOAD_URL


def test_anonymous_users_are_sent_to_the_login_page(client):
    response = client.get(UPLOAD_URL)
    assert response.status_code == 302
    assert response["Location"] == "/calls/login/?next=/upload/"


def test_signing_in_comes_back_to_the_page(client, user):
    response = client.post(
        "/calls/login/?next=/upload/",
        {"username": "alice", "password": "alice-pass-123", "next": UPLOAD_URL},
    )
    assert response.status_code == 302
    assert response["Location"] == UPLOAD_URL


def test_signed_in_users_get_the_page_under_a_strict_csp(user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.get(UPLOAD_URL)
    assert response.status_code == 200
    csp = dict(
        directive.strip().split(" ", 1)
        for directive in response["Content-Security-Policy"].split(";")
    )
    assert csp["default-src"] == "'self'"
    assert csp["script-src"] == "'self'"
    assert csp["style-src"] == "'self'"
    assert csp["img-src"] == "'self' data:"
    assert csp["connect-src"] == "'self'"
    assert csp["object-src"] == "'none'"
    assert csp["frame-ancestors"] == "'none'"
    assert response["X-Frame-Options"] == "DENY"
    assert "no-store" in response["Cache-Control"]
    assert "private" in response["Cache-Control"]
    html = response.content.decode()
    # No inline script or style for the CSP to refuse.
    assert "<script>" not in html
    assert "<style" not in html
    assert " style=" not in html
    assert 'src="/static/tracks/vendor/uppy/uppy.min.js"' in html
    assert 'src="/static/tracks/upload.js"' in html


def test_the_page_tells_the_script_where_and_how_to_upload(user, settings):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.get(UPLOAD_URL)
    html = response.content.decode()
    assert 'data-transport="tus"' in html
    assert 'data-tus-endpoint="/api/v1/uploads/tus/"' in html
    assert 'data-s3-endpoint="/api/v1/uploads"' in html
    assert 'data-uploads-url="/api/v1/uploads/"' in html
    assert 'data-player-path="/tracks/{track}/play"' in html
    assert f'data-chunk-bytes="{5 * 1024 * 1024}"' in html
    assert f'data-max-bytes="{settings.TRACK_MAX_UPLOAD_BYTES}"' in html
    # The CSRF token the tus requests send back in X-CSRFToken.
    token = response.context["csrf_token"]
    assert f'data-csrf-token="{token}"' in html
    assert 'value="private" selected' in html
    assert "Signed in as <strong>alice</strong>" in html


def test_the_page_answers_only_safe_methods(user):
    client = Client()
    client.force_login(user)
    assert client.post(UPLOAD_URL).status_code == 405
    assert client.head(UPLOAD_URL).status_code == 200


def page_of(user):
    """The page as `user` sees it: (its transport, its CSP's connect-src)."""
    client = Client()
    client.force_login(user)
    response = client.get(UPLOAD_URL)
    transport = re.search(r'data-transport="(\w+)"', response.content.decode())
    csp = dict(
        directive.strip().split(" ", 1)
        for directive in response["Content-Security-Policy"].split(";")
    )
    assert transport is not None
    return transport[1], csp["connect-src"]


def test_with_tracks_on_s3_the_page_sends_to_the_bucket(user, s3, settings):
    # The page may connect to this bucket, where the parts go, and nowhere else.
    endpoint = settings.AWS_S3_ENDPOINT_URL
    assert page_of(user) == ("s3", f"'self' {endpoint}/{s3.bucket}/")


def test_parts_go_to_the_public_endpoint_when_there_is_one(user, s3, settings):
    settings.AWS_S3_PUBLIC_ENDPOINT_URL = "https://media.example.com:8443"
    assert page_of(user) == (
        "s3",
        f"'self' https://media.example.com:8443/{s3.bucket}/",
    )


def test_a_bucket_in_the_host_name_is_the_whole_prefix(user, s3, settings):
    settings.AWS_S3_ADDRESSING_STYLE = "virtual"
    settings.AWS_S3_PUBLIC_ENDPOINT_URL = "https://s3.example.com"
    assert page_of(user) == ("s3", f"'self' https://{s3.bucket}.s3.example.com/")


def test_the_s3_transport_can_be_turned_off(user, s3, settings):
    settings.UPLOAD_PAGE_S3_DIRECT = False
    assert page_of(user) == ("tus", "'self'")
