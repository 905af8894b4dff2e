"""daphne that refuses a request body above the upload limit before buffering it."""

# daphne (Twisted) reads a request's whole body into memory or a temporary
# file before the ASGI application sees it, so Django's limits come too late:
# a `Content-Length: 10000000000` request kept a connection and a disk busy
# until the bytes stopped. Twisted calls `gotLength` as soon as the headers
# are in and `handleContentChunk` for each piece of body; the request class
# below answers 413 there and drops the connection. `make run` starts daphne
# through `python -m veza.daphne_server` with daphne's own arguments.

from __future__ import annotations

import json
from typing import Any

from daphne import server as daphne_server
from daphne.cli import CommandLineInterface
from daphne.http_protocol import HTTPFactory, WebRequest


def max_body_bytes() -> int:
    """The largest body any endpoint takes: an upload and its multipart framing."""
    from django.conf import settings

    from tracks.uploads import MULTIPART_OVERHEAD

    return int(settings.TRACK_MAX_UPLOAD_BYTES) + MULTIPART_OVERHEAD


def too_large_response(limit: int) -> bytes:
    """The API's 413, written straight to the socket: no request exists yet."""
    from veza.errors import PayloadTooLarge
    from veza.exception_handler import error_body

    exc = PayloadTooLarge(details={"max_bytes": limit})
    body = json.dumps(error_body(exc.code, exc.message, exc.details)).encode()
    head = (
        "HTTP/1.1 413 Content Too Large\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class BoundedWebRequest(WebRequest):
    """A daphne request that stops at the body limit, declared or counted."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.body_limit = max_body_bytes()
        self.body_received = 0
        self.refused = False

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > self.body_limit:
            # Twisted would answer "100 Continue" right after this call.
            self.requestHeaders.removeHeader(b"Expect")
            self.refuse()
            return
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self.refused:
            return
        self.body_received += len(data)
        if self.body_received > self.body_limit:
            # A chunked body has no declared length: count it.
            self.refuse()
            return
        super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if not self.refused:
            super().requestReceived(command, path, version)

    def refuse(self) -> None:
        self.refused = True
        self.channel.transport.write(too_large_response(self.body_limit))
        self.channel.loseConnection()


class BoundedHTTPFactory(HTTPFactory):
    def buildProtocol(self, addr: Any) -> Any:
        protocol = super().buildProtocol(addr)
        protocol.requestFactory = BoundedWebRequest
        return protocol


def main() -> None:
    # daphne's Server builds its factory from this module-level name.
    daphne_server.HTTPFactory = BoundedHTTPFactory
    CommandLineInterface.entrypoint()


if __name__ == "__main__":
    main()
