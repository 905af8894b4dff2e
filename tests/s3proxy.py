"""A reverse proxy in front of the S3 server that counts and injects faults."""

from __future__ import annotations

import http.client
import random
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


@dataclass
class Faults:
    """Share of requests that fail, and how ("corrupt" changes a byte of a
    PUT's body, a single upload's or a part's, and forwards it)."""

    rate: float = 0.0
    kinds: tuple[str, ...] = ("500", "503", "reset", "slow")
    slow_seconds: float = 0.3
    seed: int = 7
    down: bool = False
    # The next this many GETs of an object send half its bytes, then drop
    # the connection (a body cut mid-way).
    cut_gets: int = 0
    # After this many more PUTs (a part or an object each), the endpoint is
    # gone (every connection reset) for `outage_seconds`.
    outage_after_puts: int | None = None
    outage_seconds: float = 10.0


@dataclass
class S3Proxy:
    upstream: str
    faults: Faults = field(default_factory=Faults)
    requests: Counter[tuple[str, str]] = field(default_factory=Counter)
    injected: Counter[str] = field(default_factory=Counter)
    outages: list[float] = field(default_factory=list)

    def start(self) -> str:
        proxy = self
        rng = random.Random(self.faults.seed)
        lock = threading.Lock()
        target = urlsplit(self.upstream)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _fault(self) -> str | None:
                if self.command == "PUT" and proxy.faults.outage_after_puts is not None:
                    with lock:
                        proxy.faults.outage_after_puts -= 1
                        if proxy.faults.outage_after_puts <= 0:
                            proxy.faults.outage_after_puts = None
                            proxy.outage()
                if proxy.faults.down:
                    return "reset"
                with lock:
                    if rng.random() >= proxy.faults.rate:
                        return None
                    return rng.choice(proxy.faults.kinds)

            def _handle(self) -> None:
                size = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(size) if size else b""
                path = self.path.split("?")[0]
                fault = self._fault()
                if fault:
                    with lock:
                        proxy.injected[fault] += 1
                if fault == "reset":
                    self.connection.setsockopt(
                        socket.SOL_SOCKET,
                        socket.SO_LINGER,
                        b"\x01\x00\x00\x00\x00\x00\x00\x00",
                    )
                    self.close_connection = True
                    self.connection.close()
                    return
                if fault in ("500", "503"):
                    payload = b"<Error><Code>InternalError</Code></Error>"
                    self.send_response(int(fault))
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                if fault == "slow":
                    time.sleep(proxy.faults.slow_seconds)
                if fault == "corrupt" and body and self.command == "PUT":
                    # One byte changed on the way, as a bad link or NIC would.
                    body = bytes([body[0] ^ 0xFF]) + body[1:]
                upstream = http.client.HTTPConnection(
                    target.hostname, target.port, timeout=60
                )
                try:
                    headers = dict(self.headers.items())
                    upstream.request(
                        self.command, self.path, body=body, headers=headers
                    )
                    response = upstream.getresponse()
                    data = response.read()
                finally:
                    upstream.close()
                with lock:
                    proxy.requests[(self.command, path)] += 1
                self.send_response(response.status)
                for name, value in response.getheaders():
                    skip = ("transfer-encoding", "connection", "content-length")
                    if name.lower() not in skip:
                        self.send_header(name, value)
                # A HEAD answer carries the object's length, not its own.
                length: str | None = (
                    response.getheader("Content-Length")
                    if self.command == "HEAD"
                    else None
                )
                self.send_header("Content-Length", length or str(len(data)))
                self.end_headers()
                if self.command == "GET" and data and proxy.faults.cut_gets > 0:
                    with lock:
                        proxy.faults.cut_gets -= 1
                        proxy.injected["cut"] += 1
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def outage(self) -> None:
        """The endpoint goes away now, for `faults.outage_seconds`."""
        self.faults.down = True
        self.outages.append(time.monotonic())

        def back() -> None:
            self.faults.down = False

        timer = threading.Timer(self.faults.outage_seconds, back)
        timer.daemon = True
        timer.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def puts(self) -> Counter[str]:
        return Counter(
            {path: n for (method, path), n in self.requests.items() if method == "PUT"}
        )
