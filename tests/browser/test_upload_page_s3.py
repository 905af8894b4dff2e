"""With tracks on S3, the upload page sends the parts straight to the bucket
in a real browser, survives a cut network by sending only the parts the
bucket lacks, and links to the player.

Playwright drives Debian's chromium against a live server and a real S3
server (`rclone serve s3`) that lets the page's origin in (CORS). The server
signs each part; the bytes go from the browser to the bucket.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from botocore.exceptions import ClientError

from tests.audio import make_audio
from tests.browser.conftest import chromium, requires_chromium
from tests.browser.test_upload_page import (
    PLAYED_PAST_2S,
    PLAYER_ARGS,
    signed_in_page,
    start_upload,
    wait_for_state,
)
from tests.conftest import use_s3
from tests.s3server import start_s3_server
from tracks.models import Track, UploadQuota, UploadSession

pytestmark = [pytest.mark.django_db(transaction=True), requires_chromium]

MiB = 1024 * 1024
PART = 5 * MiB  # the page's part size, S3's smallest but the last
# The network goes down when the page sends this part the first time.
CUT_PART = 2


@pytest.fixture(scope="module")
def master(tmp_path_factory) -> Path:
    """A 12 MiB WAV: three parts (5, 5 and 2 MiB)."""
    path = make_audio(tmp_path_factory.mktemp("upload-s3") / "master.wav", seconds=66)
    assert 2 * PART < path.stat().st_size < 3 * PART
    return path


@pytest.fixture
def browser():
    with chromium(PLAYER_ARGS) as running:
        yield running


@pytest.fixture(scope="module")
def cors_s3_server(live_server):
    """An S3 server that lets the live server's pages send parts."""
    server = start_s3_server(allow_origin=live_server.url)
    yield server
    server.stop()


@pytest.fixture
def bucket(settings, cors_s3_server):
    return use_s3(settings, cors_s3_server)


class Parts:
    """Every part the page sends to the bucket (its number, its size and
    whether it went through); the network goes down when the page sends
    part CUT_PART, and stays down until `restore()`."""

    def __init__(self, context, page, endpoint: str) -> None:
        self.context = context
        self.down = False
        self.cut = False
        self.puts: list[tuple[int, int, str]] = []
        page.route(re.compile(re.escape(endpoint) + r"/.*"), self.route)

    def route(self, route) -> None:
        request = route.request
        query = parse_qs(urlsplit(request.url).query)
        if request.method != "PUT" or "partNumber" not in query:
            route.continue_()
            return
        number = int(query["partNumber"][0])
        size = len(request.post_data_buffer or b"")
        if number == CUT_PART and not self.cut:
            self.cut = self.down = True
            self.context.set_offline(True)
        if self.down:
            self.puts.append((number, size, "refused"))
            route.abort("internetdisconnected")
            return
        self.puts.append((number, size, "sent"))
        route.continue_()

    def restore(self) -> None:
        self.down = False
        self.context.set_offline(False)

    def sent(self, since: int = 0) -> list[tuple[int, int]]:
        return [(n, s) for n, s, outcome in self.puts[since:] if outcome == "sent"]


@pytest.mark.usefixtures("user")
def test_parts_go_to_the_bucket_resume_after_a_cut_and_the_track_plays(
    live_server, browser, master, bucket, settings
):
    settings.HLS_PACKAGE_ON_UPLOAD = True
    size = master.stat().st_size
    context = browser.new_context(viewport={"width": 1024, "height": 900})
    console: list[str] = []
    page = signed_in_page(context, live_server.url, console)
    parts = Parts(context, page, settings.AWS_S3_ENDPOINT_URL)

    start_upload(page, master, title="Straight to the bucket", visibility="public")
    page.wait_for_function("() => navigator.onLine === false", timeout=30_000)
    page.wait_for_timeout(1500)
    session = UploadSession.objects.get()
    assert (session.transport, session.status) == ("s3", "receiving")
    assert session.length == size
    # The bucket holds the first part; the page waits for the network.
    held = bucket.list_parts(
        Bucket=bucket.bucket, Key=session.s3_key, UploadId=session.s3_upload_id
    )["Parts"]
    assert [(p["PartNumber"], p["Size"]) for p in held] == [(1, PART)]
    assert page_transport(page) == "AwsS3"
    assert wait_for_state(page, "uploading") == "uploading"
    since = len(parts.puts)

    parts.restore()
    assert wait_for_state(page, "done", "failed", "stopped", timeout=90_000) == (
        "done"
    ), page.inner_text("#results")
    # After the cut: the parts the bucket lacked, not the first one again.
    assert parts.sent(since) == [(2, PART), (3, size - 2 * PART)]
    assert sorted(parts.sent()) == [(1, PART), (2, PART), (3, size - 2 * PART)]

    session.refresh_from_db()
    assert session.status == "ready"
    assert session.track_id is not None
    track = Track.objects.get(pk=session.track_id)
    assert (track.title, track.visibility, track.size_bytes) == (
        "Straight to the bucket",
        "public",
        size,
    )
    assert track.original_filename == "master.wav"
    assert track.storage_backend == "s3"
    assert track.sha256 == hashlib.sha256(master.read_bytes()).hexdigest()
    # Nothing left under the staging prefix, no multipart upload open.
    staged = bucket.list_objects_v2(Bucket=bucket.bucket, Prefix="uploads/")
    assert staged.get("KeyCount", 0) == 0
    # The page's CSP let it reach the bucket and nothing was refused.
    assert not [m for m in console if "Content Security Policy" in m], console

    link = page.locator("#results a.player-link")
    assert link.inner_text() == "Play “Straight to the bucket”"
    link.click()
    page.wait_for_url(f"{live_server.url}/tracks/{track.pk}/play")
    page.wait_for_function(
        "() => window.vezaPlayer && window.vezaPlayer.masterUrl", timeout=45_000
    )
    page.evaluate("document.getElementById('audio').play()")
    page.wait_for_function(PLAYED_PAST_2S, timeout=45_000)
    context.close()


@pytest.mark.usefixtures("user")
def test_a_file_of_one_part_goes_over_tus_to_the_same_bucket(
    live_server, browser, bucket, tmp_path
):
    small = make_audio(tmp_path / "short.wav", seconds=3)
    assert small.stat().st_size <= PART
    context = browser.new_context()
    page = signed_in_page(context, live_server.url)

    start_upload(page, small, title="Short", visibility="private")
    assert wait_for_state(page, "done", "failed", "stopped", timeout=60_000) == (
        "done"
    ), page.inner_text("#results")
    assert page_transport(page) == "Tus"
    session = UploadSession.objects.get()
    assert session.transport == "tus"
    assert session.track_id is not None
    track = Track.objects.get(pk=session.track_id)
    assert (track.title, track.storage_backend) == ("Short", "s3")
    context.close()


def test_a_refusal_shows_its_code_and_opens_nothing(
    live_server, browser, master, bucket, user
):
    UploadQuota.objects.create(user=user, storage_bytes_limit=master.stat().st_size - 1)
    context = browser.new_context()
    page = signed_in_page(context, live_server.url)

    start_upload(page, master, title="Too big", visibility="private")
    assert wait_for_state(page, "done", "failed", "stopped") == "stopped"
    item = page.locator("#results li")
    assert item.get_attribute("data-status") == "stopped"
    assert item.locator("code").inner_text() == "storage_quota_exceeded"
    assert not UploadSession.objects.exists()
    assert not Track.all_objects.exists()
    context.close()


def page_transport(page) -> str:
    return page.evaluate("window.vezaUpload.transport")


@pytest.mark.usefixtures("user")
def test_a_file_removed_while_waiting_to_retry_ends_its_upload(
    live_server, browser, master, bucket, settings
):
    context = browser.new_context()
    page = signed_in_page(context, live_server.url)
    refused: list[int] = []

    def refuse_part_two(route) -> None:
        query = parse_qs(urlsplit(route.request.url).query)
        if route.request.method == "PUT" and query.get("partNumber") == ["2"]:
            refused.append(2)
            route.fulfill(status=403, body="<Error><Code>AccessDenied</Code></Error>")
            return
        route.continue_()

    page.route(
        re.compile(re.escape(settings.AWS_S3_ENDPOINT_URL) + r"/.*"), refuse_part_two
    )
    start_upload(page, master, title="Removed", visibility="private")
    # The page waits to try again; the plugin no longer listens to the file.
    page.wait_for_function(
        "() => [...document.querySelectorAll('#results li')]"
        ".some((li) => li.textContent.includes('waiting for the network'))",
        timeout=30_000,
    )
    session = UploadSession.objects.get()
    assert session.status == "receiving"
    page.locator(".uppy-Dashboard-Item-action--remove").first.click()

    # The page ended the session: no session, no multipart upload, no object.
    page.wait_for_function(
        "() => document.querySelector('#results li').dataset.status === 'cancelled'"
    )
    for _ in range(50):
        if not UploadSession.objects.exists():
            break
        page.wait_for_timeout(100)
    assert not UploadSession.objects.exists()
    with pytest.raises(ClientError):
        bucket.list_parts(
            Bucket=bucket.bucket, Key=session.s3_key, UploadId=session.s3_upload_id
        )
    assert refused
    context.close()
