"""A CDN edge on a loopback port: checks a request as the provider's edge
would (tests/cdn/verifiers.py), then proxies it to an origin.

A stand-in for the Bunny, Cloudflare and CloudFront edges, which lie beyond
this machine. It does no caching: every allowed request goes to the origin
with its Range, If-Range, If-None-Match and If-Modified-Since, and the
origin's status (200/206/304/416), Content-Range, Content-Length,
Accept-Ranges, ETag and body come back unchanged. A refused request is 403
and never reaches the origin.

    with run_edge(BunnyEdge(keys=["k"]), S3Upstream(...)) as edge:
        requests.get(edge.base_url + "/bcdn_token=…/hls/<hash>/64k/media.mp4")
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple, Protocol, cast
from urllib.parse import unquote

import boto3
import botocore.config
import requests

from tests.cdn.verifiers import EdgeRequest, Verifier

# What an edge passes to its origin, and back to the client.
REQUEST_HEADERS = ("Range", "If-Range", "If-None-Match", "If-Modified-Since")
RESPONSE_HEADERS = (
    "Accept-Ranges",
    "Cache-Control",
    "Content-Length",
    "Content-Range",
    "Content-Type",
    "ETag",
    "Last-Modified",
)


class OriginResponse(NamedTuple):
    status: int
    headers: Mapping[str, str]
    body: bytes


class Upstream(Protocol):
    def fetch(
        self, method: str, path: str, headers: Mapping[str, str]
    ) -> OriginResponse:
        """`method` (GET or HEAD) of `path` (percent-encoded, from /)."""
        ...


def _response(response: requests.Response) -> OriginResponse:
    # requests' headers are case-insensitive; keep them so.
    return OriginResponse(response.status_code, response.headers, response.content)


@dataclass
class HttpUpstream:
    """An origin that serves `base_url` + path to anyone (a public bucket)."""

    base_url: str

    def fetch(
        self, method: str, path: str, headers: Mapping[str, str]
    ) -> OriginResponse:
        response = requests.request(
            method,
            self.base_url.rstrip("/") + path,
            headers=dict(headers),
            allow_redirects=False,
            timeout=30,
        )
        return _response(response)


@dataclass
class S3Upstream:
    """A bucket that needs signed requests (rclone's S3 server refuses
    anonymous ones): every request is presigned for its method, as an
    origin-access identity would sign it. The Range header is not signed,
    so it passes through."""

    endpoint: str
    bucket: str
    access_key: str
    secret_key: str
    # rclone 1.75's gofakes3 answers a satisfied Range with 200 and a
    # Content-Range (fixed upstream in johannesboyne/gofakes3#121: S3, MinIO
    # and R2 answer 206). Such an answer is passed on as the 206 a real
    # origin sends, and counted here.
    partial_as_200: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self._client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            config=botocore.config.Config(
                signature_version="s3v4", s3={"addressing_style": "path"}
            ),
        )

    def fetch(
        self, method: str, path: str, headers: Mapping[str, str]
    ) -> OriginResponse:
        operation = {"GET": "get_object", "HEAD": "head_object"}[method]
        url = self._client.generate_presigned_url(
            operation,
            Params={"Bucket": self.bucket, "Key": unquote(path).lstrip("/")},
            ExpiresIn=60,
        )
        response = requests.request(
            method, url, headers=dict(headers), allow_redirects=False, timeout=30
        )
        origin = _response(response)
        if (
            method == "GET"
            and "Range" in headers
            and origin.status == 200
            and "Content-Range" in origin.headers
        ):
            with self._lock:
                self.partial_as_200 += 1
            return origin._replace(status=206)
        return origin


def bucket_upstream(s3: Any, s3_server: Any) -> S3Upstream:
    """The test bucket (the `s3` and `s3_server` fixtures) as an origin."""
    return S3Upstream(
        endpoint=s3_server.endpoint,
        bucket=s3.bucket,
        access_key=s3_server.access_key,
        secret_key=s3_server.secret_key,
    )


@dataclass
class Edge:
    base_url: str
    verifier: Verifier
    upstream: Upstream
    # CORS as a zone configured for web players answers it (Bunny's "Add
    # CORS headers", a Cloudflare transform rule, a CloudFront response
    # headers policy): any origin, Range allowed, the lengths exposed.
    cors: bool = False
    # (method, raw request target, status) of every request, in order.
    log: list[tuple[str, str, int]] = field(default_factory=list)
    # The origin paths the edge fetched.
    forwarded: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, method: str, target: str, status: int) -> None:
        with self._lock:
            self.log.append((method, target, status))


def _cookies(values: list[str]) -> dict[str, str]:
    cookies: dict[str, str] = {}
    for header in values:
        for part in header.split(";"):
            name, equals, value = part.strip().partition("=")
            if equals:
                cookies[name] = value.strip('"')
    return cookies


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    edge: Edge


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def do_OPTIONS(self) -> None:
        edge = cast(_Server, self.server).edge
        self.send_response(204 if edge.cors else 405)
        if edge.cors:
            self._cors_headers()
            self.send_header("Access-Control-Allow-Methods", "GET, HEAD")
            self.send_header("Access-Control-Allow-Headers", "Range")
            self.send_header("Access-Control-Max-Age", "600")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _cors_headers(self) -> None:
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header(
            "Access-Control-Expose-Headers", "Content-Length, Content-Range"
        )

    def _send(
        self, status: int, headers: Mapping[str, str], body: bytes, length: str | None
    ) -> None:
        self.send_response(status)
        if cast(_Server, self.server).edge.cors:
            self._cors_headers()
        for name in RESPONSE_HEADERS:
            if name in headers and name != "Content-Length":
                self.send_header(name, headers[name])
        if length is not None:
            self.send_header("Content-Length", length)
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _serve(self) -> None:
        edge = cast(_Server, self.server).edge
        request = EdgeRequest(
            target=self.path,
            base_url=edge.base_url,
            now=int(time.time()),
            cookies=_cookies(self.headers.get_all("Cookie") or []),
            client_ip=self.client_address[0],
        )
        path = edge.verifier.origin_path(request)
        if path is None:
            edge.record(self.command, self.path, 403)
            body = b"403 Forbidden\n"
            self._send(403, {"Content-Type": "text/plain"}, body, str(len(body)))
            return
        with edge._lock:
            edge.forwarded.append(path)
        forwarded = {h: self.headers[h] for h in REQUEST_HEADERS if h in self.headers}
        origin = edge.upstream.fetch(self.command, path, forwarded)
        edge.record(self.command, self.path, origin.status)
        if self.command == "HEAD" or origin.status == 304:
            # The length of the representation, not of this (empty) answer.
            length = origin.headers.get("Content-Length")
        else:
            length = str(len(origin.body))
        self._send(origin.status, origin.headers, origin.body, length)


@contextlib.contextmanager
def run_edge(
    verifier: Verifier, upstream: Upstream, *, cors: bool = False
) -> Iterator[Edge]:
    """An edge on a free loopback port, serving until the block ends."""
    server = _Server(("127.0.0.1", 0), _Handler)
    edge = Edge(
        base_url=f"http://127.0.0.1:{server.server_address[1]}",
        verifier=verifier,
        upstream=upstream,
        cors=cors,
    )
    server.edge = edge
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield edge
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
