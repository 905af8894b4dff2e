"""Platform endpoints: auth tokens, errors, CORS, OpenAPI, health, metrics."""

from __future__ import annotations

import datetime as dt
import importlib
import pkgutil
import time

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.urls import URLPattern, URLResolver, get_resolver

from tests.s3server import free_port
from tests.tracks.helpers import assert_error, create_track

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_cache():
    # The login throttle counts in the cache, across tests of one process.
    cache.clear()
    yield
    cache.clear()


def test_token_exchange_and_use(api_client, user):
    response = api_client.post(
        "/api/v1/auth/token", {"username": "alice", "password": "alice-pass-123"}
    )
    assert response.status_code == 200
    token = response.json()["token"]
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert api_client.get("/api/v1/tracks/").status_code == 200


def test_token_exchange_refuses_bad_credentials(api_client, user):
    response = api_client.post(
        "/api/v1/auth/token", {"username": "alice", "password": "nope"}
    )
    assert_error(response, 401, "invalid_credentials")
    assert_error(api_client.post("/api/v1/auth/token", {}), 400, "invalid")


def test_bad_token_is_401(api_client):
    api_client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert_error(api_client.get("/api/v1/tracks/"), 401, "authentication_failed")


def test_session_login_works_for_the_browser(client, user):
    client.login(username="alice", password="alice-pass-123")
    assert client.get("/api/v1/tracks/").status_code == 200


def test_unknown_api_path_is_json_404(api_client):
    assert_error(api_client.get("/api/v1/nothing-here"), 404, "not_found")


def test_method_not_allowed_has_the_error_shape(auth_client):
    assert_error(auth_client.put("/api/v1/tracks/"), 405, "method_not_allowed")


def test_cors_is_closed_by_default(api_client):
    response = api_client.options(
        "/api/v1/tracks/",
        HTTP_ORIGIN="https://app.example",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET",
    )
    assert "Access-Control-Allow-Origin" not in response


def test_cors_allows_configured_origins(api_client, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example"]
    response = api_client.options(
        "/api/v1/tracks/",
        HTTP_ORIGIN="https://app.example",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
    )
    assert response["Access-Control-Allow-Origin"] == "https://app.example"
    other = api_client.options(
        "/api/v1/tracks/",
        HTTP_ORIGIN="https://evil.example",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
    )
    assert "Access-Control-Allow-Origin" not in other


@pytest.mark.parametrize(
    ("method", "headers"),
    [
        ("get", {}),
        ("get", {"HTTP_ORIGIN": ""}),
        ("get", {"HTTP_ORIGIN": "https://app.example"}),
        ("get", {"HTTP_ORIGIN": "https://evil.example"}),
        ("options", {"HTTP_ORIGIN": "https://app.example"}),
        (
            "options",
            {
                "HTTP_ORIGIN": "https://app.example",
                "HTTP_ACCESS_CONTROL_REQUEST_METHOD": "GET",
            },
        ),
    ],
)
@pytest.mark.parametrize("path", ["/api/v1/tracks/", "/healthz"])
def test_our_cors_middleware_answers_as_django_cors_headers(
    rf, settings, method, headers, path
):
    """veza.cors skips building request.headers when there is no Origin;
    its answers are those of the middleware it extends."""
    from corsheaders.middleware import CorsMiddleware as Theirs
    from django.http import HttpResponse

    from veza.cors import CorsMiddleware as Ours

    settings.CORS_ALLOWED_ORIGINS = ["https://app.example"]
    settings.CORS_URLS_REGEX = r"^/api/"

    def view(request):
        return HttpResponse(b"{}", content_type="application/json")

    answers = [
        dict(middleware(view)(getattr(rf, method)(path, **headers)).items())
        for middleware in (Ours, Theirs)
    ]
    assert answers[0] == answers[1]


def api_routes() -> set[str]:
    routes: set[str] = set()

    def walk(patterns, prefix: str) -> None:
        for p in patterns:
            if isinstance(p, URLResolver):
                walk(p.url_patterns, prefix + str(p.pattern))
            elif isinstance(p, URLPattern):
                routes.add(prefix + str(p.pattern))

    walk(get_resolver().url_patterns, "/")
    return {r for r in routes if r.startswith("/api/v1/")}


# Routes whose contract is another protocol's, not this schema: tus 1.0.0
# (tus.io) and the S3 multipart routes of Uppy's @uppy/aws-s3 plugin.
OTHER_PROTOCOLS = {
    "/api/v1/uploads/tus/",
    "/api/v1/uploads/tus/<uuid:upload_id>",
    "/api/v1/uploads/s3/multipart",
    "/api/v1/uploads/s3/multipart/<str:upload_id>",
    "/api/v1/uploads/s3/multipart/<str:upload_id>/complete",
    "/api/v1/uploads/s3/multipart/<str:upload_id>/<int:part_number>",
}


def test_openapi_schema_validates_and_covers_every_endpoint(client, tmp_path):
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    schema = client.get(
        "/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json"
    ).json()
    assert schema["openapi"].startswith("3.")
    documented = {
        path.replace("{track_id}", "<uuid:track_id>").replace(
            "{upload_id}", "<uuid:upload_id>"
        )
        for path in schema["paths"]
    }
    assert api_routes() >= OTHER_PROTOCOLS
    undocumented = api_routes() - OTHER_PROTOCOLS - documented
    assert not undocumented, undocumented
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    # The UI's assets come from this server, so the page works offline.
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in docs.content.decode()


def test_healthz(client):
    assert client.get("/healthz").json() == {"status": "ok"}


def test_readyz_reports_each_dependency(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert {k: v["ok"] for k, v in response.json()["checks"].items()} == {
        "database": True,
        "storage": True,
        "channel_layer": True,
    }


def test_readyz_is_503_when_storage_is_down(client, s3, settings):
    assert client.get("/readyz").status_code == 200
    settings.AWS_S3_ENDPOINT_URL = f"http://127.0.0.1:{free_port()}"
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()["error"]
    assert body["code"] == "not_ready"
    assert body["details"]["storage"]["ok"] is False
    assert body["details"]["database"]["ok"] is True


def test_readyz_tells_why_to_staff_only(client, s3, settings, staff_user, caplog):
    settings.AWS_S3_ENDPOINT_URL = f"http://127.0.0.1:{free_port()}"
    anonymous = client.get("/readyz").json()["error"]["details"]["storage"]
    assert set(anonymous) == {"ok", "ms"}
    assert "127.0.0.1" in caplog.text  # the reason is logged
    client.force_login(staff_user)
    staff = client.get("/readyz").json()["error"]["details"]["storage"]
    assert "127.0.0.1" in staff["error"]


def test_metrics_are_closed_in_production_until_scraped_with_the_token(
    client, settings
):
    settings.PRODUCTION = True
    settings.METRICS_TOKEN = "scrape-secret-123"
    settings.METRICS_ALLOWED_IPS = []
    response = client.get("/metrics")
    assert_error(response, 401, "metrics_token_required")
    assert response["WWW-Authenticate"].startswith("Bearer")
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer nope")
    assert_error(wrong, 401, "metrics_token_required")
    right = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret-123")
    assert right.status_code == 200
    assert b"veza_http_requests_total" in right.content
    settings.METRICS_TOKEN = ""
    assert_error(client.get("/metrics"), 401, "metrics_token_required")


def test_metrics_allow_list_takes_the_address_behind_the_proxy(client, settings):
    settings.PRODUCTION = True
    settings.METRICS_ALLOWED_IPS = ["10.0.0.5"]
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    # nginx on the same host: REMOTE_ADDR is its own, the client is in XFF.
    behind = {"REMOTE_ADDR": "127.0.0.1"}
    ok = client.get("/metrics", HTTP_X_FORWARDED_FOR="10.0.0.5", **behind)
    assert ok.status_code == 200
    refused = client.get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.1", **behind)
    assert refused.status_code == 401
    # nginx always adds X-Forwarded-For; a request without one came straight
    # to the app server (a Prometheus on the same host), its REMOTE_ADDR real.
    settings.METRICS_ALLOWED_IPS = ["127.0.0.1"]
    assert client.get("/metrics", **behind).status_code == 200
    spoofed = client.get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.1", **behind)
    assert spoofed.status_code == 401


def test_metrics_from_an_allowed_address(client, settings):
    settings.PRODUCTION = True
    settings.METRICS_ALLOWED_IPS = ["10.0.0.5"]
    assert client.get("/metrics", REMOTE_ADDR="10.0.0.5").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.0.0.6").status_code == 401


def test_metrics_are_exported(client, auth_client, wav_file):
    create_track(auth_client, wav_file.read_bytes())
    text = client.get("/metrics").content.decode()
    for name in (
        "veza_cache_hits_total",
        "veza_storage_operations_total",
        "veza_upload_bytes_total",
    ):
        assert (
            f"# TYPE {name.removesuffix('_total')} counter" in text
            or f"# TYPE {name} counter" in text
        )
    assert (
        'veza_storage_operations_total{backend="local",operation="put",outcome="ok"}'
        in text
    )
    assert 'veza_upload_bytes_total{backend="local"}' in text
    assert (
        'veza_http_requests_total{method="POST",status="201",view="tracks-api:list"}'
        in text
    )
    assert "veza_http_request_seconds_bucket" in text


def test_every_module_imports_and_metrics_reload_without_duplicates():
    import cdn
    import streaming
    import tracks
    import veza
    import webrtc
    from veza import metrics

    for package in (veza, tracks, cdn, streaming, webrtc):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if ".migrations." in info.name or info.name.startswith("veza.settings"):
                continue
            importlib.import_module(info.name)
    before = metrics.UPLOAD_BYTES
    importlib.reload(metrics)
    importlib.reload(metrics)
    assert metrics.UPLOAD_BYTES is before

    from django.core.asgi import get_asgi_application
    from django.core.wsgi import get_wsgi_application

    for _ in range(2):
        assert get_wsgi_application() is not None
        assert get_asgi_application() is not None


def test_deleted_tokens_stop_working_at_once(auth_client, user):
    from rest_framework.authtoken.models import Token

    assert auth_client.get("/api/v1/tracks/").status_code == 200
    assert auth_client.get("/api/v1/tracks/").status_code == 200  # from the cache
    Token.objects.filter(user=user).delete()
    assert_error(auth_client.get("/api/v1/tracks/"), 401, "authentication_failed")


def test_the_favicon_is_served(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 302
    icon = client.get(response["Location"])
    assert icon.status_code == 200
    assert b"<svg" in b"".join(icon.streaming_content)


def test_the_token_endpoint_limits_tries_per_client(api_client, user, settings):
    settings.AXES_ENABLED = False  # the lockout comes first; see below
    cache.clear()
    try:
        for _ in range(30):
            response = api_client.post(
                "/api/v1/auth/token", {"username": "alice", "password": "nope"}
            )
            assert response.status_code == 401
        response = api_client.post(
            "/api/v1/auth/token", {"username": "alice", "password": "alice-pass-123"}
        )
        assert_error(response, 429, "throttled")
        assert "Retry-After" in response
    finally:
        cache.clear()


def test_a_forged_forwarded_for_does_not_escape_the_login_limit(
    api_client, user, settings
):
    settings.AXES_ENABLED = False  # the throttle alone
    cache.clear()
    try:
        for n in range(30):
            response = api_client.post(
                "/api/v1/auth/token",
                {"username": "alice", "password": "nope"},
                HTTP_X_FORWARDED_FOR=f"203.0.113.{n}",
            )
            assert response.status_code == 401
        response = api_client.post(
            "/api/v1/auth/token",
            {"username": "alice", "password": "alice-pass-123"},
            HTTP_X_FORWARDED_FOR="198.51.100.7",
        )
        assert_error(response, 429, "throttled")
    finally:
        cache.clear()


def token_try(client, password: str, **extra):
    return client.post(
        "/api/v1/auth/token", {"username": "alice", "password": password}, **extra
    )


def test_ten_failures_lock_the_account_even_with_the_right_password(
    api_client, user, other_user
):
    for _ in range(9):
        assert_error(token_try(api_client, "nope"), 401, "invalid_credentials")
    # The tenth failure locks the account: it is answered 429 already.
    assert_error(token_try(api_client, "nope"), 429, "account_locked")
    locked = token_try(api_client, "alice-pass-123")
    assert_error(locked, 429, "account_locked")
    assert int(locked["Retry-After"]) == 15 * 60
    # From another address too: the account is locked, not only the address.
    elsewhere = token_try(api_client, "alice-pass-123", REMOTE_ADDR="198.51.100.9")
    assert_error(elsewhere, 429, "account_locked")
    # The address is locked for other accounts.
    response = api_client.post(
        "/api/v1/auth/token", {"username": "bob", "password": "bob-pass-123"}
    )
    assert_error(response, 429, "account_locked")


def test_a_success_resets_the_count(api_client, user):
    for _ in range(9):
        token_try(api_client, "nope")
    assert token_try(api_client, "alice-pass-123").status_code == 200
    for _ in range(9):
        token_try(api_client, "nope")
    assert token_try(api_client, "alice-pass-123").status_code == 200


def test_forged_forwarded_for_values_share_one_lockout(api_client, user):
    for n in range(10):
        token_try(api_client, "nope", HTTP_X_FORWARDED_FOR=f"203.0.113.{n}")
    response = token_try(
        api_client, "alice-pass-123", HTTP_X_FORWARDED_FOR="198.51.100.7"
    )
    assert_error(response, 429, "account_locked")


def test_the_lockout_ends_after_the_cool_off_and_shows_in_the_admin(
    api_client, user, admin_client, settings
):
    from axes.models import AccessAttempt

    for _ in range(10):
        token_try(api_client, "nope")
    assert token_try(api_client, "alice-pass-123").status_code == 429
    page = admin_client.get("/admin/axes/accessattempt/")
    assert page.status_code == 200
    assert b"alice" in page.content
    # Staff reset it from the admin (deleting the attempt), or it ends with
    # the cool-off.
    AccessAttempt.objects.all().delete()
    assert token_try(api_client, "alice-pass-123").status_code == 200
    settings.AXES_COOLOFF_TIME = dt.timedelta(seconds=1)
    for _ in range(10):
        token_try(api_client, "nope")
    assert token_try(api_client, "alice-pass-123").status_code == 429
    time.sleep(1.5)  # past the cool-off: no speed is measured here
    assert token_try(api_client, "alice-pass-123").status_code == 200


@pytest.mark.parametrize("path", ["/admin/login/", "/calls/login/"])
def test_the_html_logins_lock_out_too(client, staff_user, path):
    for _ in range(9):
        response = client.post(path, {"username": staff_user.username, "password": "x"})
        assert response.status_code == 200  # the form again, with its error
    response = client.post(path, {"username": staff_user.username, "password": "x"})
    assert response.status_code == 429
    assert "Too many failed logins" in response.content.decode()


def get_token(client) -> str:
    response = token_try(client, "alice-pass-123")
    assert response.status_code == 200, response.content
    return response.json()["token"]


def test_a_token_expires(api_client, user, settings):
    key = get_token(api_client)
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert api_client.get("/api/v1/tracks/").status_code == 200  # now cached
    settings.API_TOKEN_TTL_DAYS = 0
    assert_error(api_client.get("/api/v1/tracks/"), 401, "token_expired")
    settings.API_TOKEN_TTL_DAYS = 30
    api_client.credentials()
    fresh = get_token(api_client)
    assert fresh != key
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {fresh}")
    assert api_client.get("/api/v1/tracks/").status_code == 200


@pytest.mark.parametrize("change", ["password", "deactivate"])
def test_a_new_password_or_a_deactivation_revokes_tokens(
    api_client, user, change, django_capture_on_commit_callbacks
):
    key = get_token(api_client)
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert api_client.get("/api/v1/tracks/").status_code == 200  # now cached
    with django_capture_on_commit_callbacks(execute=True):
        if change == "password":
            user.set_password("a-new-pass-456")
        else:
            user.is_active = False
        user.save()
    assert_error(api_client.get("/api/v1/tracks/"), 401, "authentication_failed")


def test_a_login_keeps_the_token(
    api_client, client, user, django_capture_on_commit_callbacks
):
    key = get_token(api_client)
    with django_capture_on_commit_callbacks(execute=True):
        assert client.login(username="alice", password="alice-pass-123")
    assert get_token(api_client) == key


def test_tokens_are_listed_and_revoked(api_client, user):
    key = get_token(api_client)
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    listed = api_client.get("/api/v1/auth/tokens").json()
    assert len(listed) == 1
    assert listed[0]["current"] is True
    created = dt.datetime.fromisoformat(listed[0]["created"])
    expires = dt.datetime.fromisoformat(listed[0]["expires_at"])
    assert expires - created == dt.timedelta(days=30)
    assert api_client.delete("/api/v1/auth/tokens").status_code == 204
    assert_error(api_client.get("/api/v1/tracks/"), 401, "authentication_failed")


def test_a_password_rehash_at_login_keeps_the_tokens(
    api_client, client, user, settings, django_capture_on_commit_callbacks
):
    key = get_token(api_client)
    # A new preferred hasher: Django re-hashes the password at the next login.
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
        "django.contrib.auth.hashers.MD5PasswordHasher",
    ]
    with django_capture_on_commit_callbacks(execute=True):
        assert client.login(username="alice", password="alice-pass-123")
    user.refresh_from_db()
    assert user.password.startswith("pbkdf2_sha256$")
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert api_client.get("/api/v1/tracks/").status_code == 200


def test_a_username_longer_than_any_account_is_a_400(api_client):
    response = api_client.post(
        "/api/v1/auth/token", {"username": "a" * 151, "password": "x"}
    )
    assert_error(response, 400, "invalid")
