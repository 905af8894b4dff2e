"""Run every benchmark (`make bench`): upload to HLS, scale and calls included.

Each benchmark prints its own table and ratios; figures are also written as
JSON under bench/out/. See docs/BENCHMARKS.md for the recorded results.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
SCRIPTS = [
    "bench_upload.py",
    "bench_resumable.py",
    "bench_stream_url.py",
    "bench_migrate.py",
    "bench_scale.py",
    "bench_cdn.py",
    "bench_signaling.py",
    "bench_hls_package.py",
    "bench_hls_serve.py",
    "bench_catalogue.py",
    "bench_failover.py",
    "bench_redis_failover.py",
]
TIMEOUT = 45 * 60  # seconds per script


def main() -> int:
    failed = []
    for script in SCRIPTS:
        print(f"=== {script} ===", flush=True)
        try:
            code = subprocess.run(
                [sys.executable, str(BENCH / script)], timeout=TIMEOUT, check=False
            ).returncode
        except subprocess.TimeoutExpired:
            code = -1
            print(f"{script} timed out after {TIMEOUT} s")
        if code:
            failed.append(script)
        print(flush=True)
    if failed:
        print("FAILED: " + ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
