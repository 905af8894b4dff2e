"""CDN signing throughput per provider beside the bare primitive, in one run.

Each provider's `sign_url` (the whole signed URL, as playback calls it) is
timed on the same path and expiry as the bare operation it wraps: HMAC-SHA256
(Bunny HMAC, Cloudflare), SHA-256 (Bunny legacy), RSA PKCS#1 v1.5 SHA-1
(CloudFront, via `cryptography`), and botocore's presigner for R2 (the tool a
user would otherwise pick). Goals: Bunny and Cloudflare >= 0.33x the bare
primitive, CloudFront >= 0.8x bare RSA.

    .venv/bin/python bench/bench_cdn.py [--seconds 1.0] [--rounds 5]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import hmac
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import padding  # noqa: E402

from cdn.bunny import BunnyProvider  # noqa: E402
from cdn.cloudflare import CloudflareProvider  # noqa: E402
from cdn.cloudfront import CloudFrontProvider, load_private_key  # noqa: E402
from cdn.r2 import R2Provider  # noqa: E402

KEY_FILE = ROOT / "tests" / "cdn" / "cloudfront-test-key.pem"
PATH = "/tracks/0b3f9a52-6f0e-4d7e-9a51-2f5d8c1e7a40/" + "9f" * 32 + ".flac"
SECRET = "bunny-zone-key-3c6f1d0e-8a9b-4c2d"  # noqa: S105 (a throwaway key)


def rate(fn: Callable[[], object], *, seconds: float, rounds: int) -> float:
    """Best calls per second over `rounds` runs of about `seconds` each."""
    best = 0.0
    for _ in range(rounds):
        calls, batch = 0, 64
        start = time.perf_counter()
        deadline = start + seconds
        while True:
            for _ in range(batch):
                fn()
            calls += batch
            now = time.perf_counter()
            if now >= deadline:
                break
        best = max(best, calls / (now - start))
    return best


def machine() -> str:
    memory = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f", {int(line.split()[1]) // 1024 // 1024} GiB"
    except OSError:
        pass
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
        f"{memory}, Python {platform.python_version()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    measure = {"seconds": args.seconds, "rounds": args.rounds}

    expires = int(time.time()) + 3600
    key = SECRET.encode()
    message = f"{PATH}{expires}".encode()
    pem = KEY_FILE.read_bytes()
    private_key = load_private_key(pem)
    base = "https://cdn.veza.example"
    canned = (
        f'{{"Statement":[{{"Resource":"{base}{PATH}","Condition":{{"DateLessThan":'
        f'{{"AWS:EpochTime":{expires}}}}}}}]}}'
    ).encode()

    import boto3
    from botocore.config import Config

    boto_client = boto3.client(
        "s3",
        endpoint_url="https://acc.r2.cloudflarestorage.com",
        region_name="auto",
        aws_access_key_id="AK",
        aws_secret_access_key="SK",  # noqa: S106
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    bunny = BunnyProvider(base_url=base, key=SECRET)
    bunny_legacy = BunnyProvider(base_url=base, key=SECRET, scheme="sha256")
    cloudflare = CloudflareProvider(base_url=base, key=SECRET, ttl=3600)
    cloudfront = CloudFrontProvider(
        base_url=base, key_pair_id="K2JCJMDEHXQW5F", private_key_pem=pem
    )
    r2 = R2Provider(
        endpoint_url="https://acc.r2.cloudflarestorage.com",
        bucket="media",
        access_key="AK",
        secret_key="SK",  # noqa: S106
    )

    cases = [
        (
            "bunny (hmac)",
            lambda: bunny.sign_url(path=PATH, expires_at=expires),
            "bare hmac.new(...).digest()",
            lambda: hmac.new(key, message, hashlib.sha256).digest(),
            0.33,
        ),
        (
            "bunny (sha256 legacy)",
            lambda: bunny_legacy.sign_url(path=PATH, expires_at=expires),
            "bare hashlib.sha256(...).digest()",
            lambda: hashlib.sha256(key + message).digest(),
            0.33,
        ),
        (
            "cloudflare (waf hmac)",
            lambda: cloudflare.sign_url(path=PATH, expires_at=expires),
            "bare hmac.new(...).digest()",
            lambda: hmac.new(key, message, hashlib.sha256).digest(),
            0.33,
        ),
        (
            "cloudfront (canned, rsa-2048)",
            lambda: cloudfront.sign_url(path=PATH, expires_at=expires),
            "bare RSA sign (cryptography)",
            lambda: private_key.sign(canned, padding.PKCS1v15(), hashes.SHA1()),  # noqa: S303
            0.8,
        ),
        (
            "r2 (sigv4 presign)",
            lambda: r2.sign_url(path=PATH, expires_at=expires),
            "boto3 generate_presigned_url",
            lambda: boto_client.generate_presigned_url(
                "get_object",
                Params={"Bucket": "media", "Key": PATH[1:]},
                ExpiresIn=3600,
            ),
            None,
        ),
    ]

    results = []
    print(f"machine: {machine()}")
    print(f"{'provider':32} {'URLs/s':>12}  {'baseline':34} {'ops/s':>12}  ratio  goal")
    for name, ours, baseline_name, baseline, goal in cases:
        # Interleave so both sides see the same machine state.
        ours_rate = rate(ours, **measure)
        bare_rate = rate(baseline, **measure)
        ratio = ours_rate / bare_rate
        met = "" if goal is None else ("ok" if ratio >= goal else "MISSED")
        goal_text = "" if goal is None else f">= {goal}x {met}"
        print(
            f"{name:32} {ours_rate:12,.0f}  {baseline_name:34} {bare_rate:12,.0f}"
            f"  {ratio:5.2f}  {goal_text}"
        )
        results.append(
            {
                "provider": name,
                "urls_per_second": round(ours_rate),
                "baseline": baseline_name,
                "baseline_per_second": round(bare_rate),
                "ratio": round(ratio, 3),
                "goal": goal,
            }
        )
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "bench_cdn.json").write_text(
        json.dumps(
            {
                "machine": machine(),
                "date": dt.datetime.now(tz=dt.UTC).isoformat(timespec="seconds"),
                "command": "python bench/bench_cdn.py "
                f"--seconds {args.seconds} --rounds {args.rounds}",
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
