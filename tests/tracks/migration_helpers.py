"""Helpers for the storage migration tests: rows with real bytes, subprocess runs."""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
import uuid
from pathlib import Path

from django.db import connection

from mediastore.tally import tally_recount
from tracks.models import Track

BASE_DIR = Path(__file__).resolve().parent.parent.parent


def make_local_tracks(
    owner, media_root: Path, count: int, size: int = 64 * 1024, seed: int = 1
) -> list[Track]:
    """Rows on local storage with random bytes at their deterministic names."""
    rng = random.Random(seed)
    tracks: list[Track] = []
    for _ in range(count):
        data = rng.randbytes(size)
        sha = hashlib.sha256(data).hexdigest()
        track_id = uuid.uuid4()
        key = f"tracks/{track_id}/{sha}.wav"
        path = media_root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        tracks.append(
            Track(
                id=track_id,
                owner=owner,
                title=f"t{len(tracks)}",
                original_filename="t.wav",
                mime_type="audio/wav",
                size_bytes=size,
                sha256=sha,
                duration_seconds=1.0,
                storage_backend="local",
                storage_key=key,
            )
        )
    created = Track.objects.bulk_create(tracks)
    # A bulk insert bypasses the writes that keep the storage tallies, as a
    # bulk import would: count again, as its operator would.
    tally_recount()
    return created


def database_url() -> str:
    """The URL of the test database, for subprocesses."""
    s = connection.settings_dict
    if s["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{s['NAME']}"
    host = s["HOST"] or "127.0.0.1"
    return f"postgres://{s['USER']}@{host}:{s['PORT'] or 5432}/{s['NAME']}"


def command_env(settings, *, endpoint: str | None = None) -> dict[str, str]:
    environment = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "VEZA_", "AWS_", "TRACK_"))
    }
    environment.update(
        {
            "DJANGO_SETTINGS_MODULE": "veza.settings.base",
            "DATABASE_URL": database_url(),
            "VEZA_VAR_DIR": str(settings.VAR_DIR),
            "VEZA_MEDIA_ROOT": str(settings.MEDIA_ROOT),
            "TRACK_STORAGE_BACKEND": "local",
            "AWS_S3_ENABLED": "true",
            "AWS_STORAGE_BUCKET_NAME": settings.AWS_STORAGE_BUCKET_NAME,
            "AWS_ACCESS_KEY_ID": settings.AWS_ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": settings.AWS_SECRET_ACCESS_KEY,
            "AWS_S3_ENDPOINT_URL": endpoint or settings.AWS_S3_ENDPOINT_URL,
            "AWS_S3_MAX_ATTEMPTS": "6",
            "AWS_S3_MULTIPART_THRESHOLD": str(settings.AWS_S3_MULTIPART_THRESHOLD),
        }
    )
    return environment


def start_command(
    settings, *args: str, endpoint: str | None = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "manage.py", "migrate_storage", *args],
        cwd=BASE_DIR,
        env=command_env(settings, endpoint=endpoint),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def start_worker(
    settings, *args: str, endpoint: str | None = None
) -> subprocess.Popen[str]:
    """A task worker (`manage.py db_worker`) on the test database."""
    return subprocess.Popen(
        [
            sys.executable, "manage.py", "db_worker", "--no-startup-delay",
            "--no-reload", *args,
        ],
        cwd=BASE_DIR,
        env=command_env(settings, endpoint=endpoint),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
