"""`manage.py expire_uploads`: end abandoned resumable uploads, delete their bytes."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from tracks.upload_sessions import upload_sessions_expire


class Command(BaseCommand):
    help = (
        "Expire resumable uploads not written to for UPLOAD_SESSION_TTL seconds "
        "and delete their staged bytes. Run it periodically (cron, a timer)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        count = upload_sessions_expire()
        self.stdout.write(f"{count} upload(s) expired")
