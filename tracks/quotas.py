"""Per-user upload limits: what a user may still upload, and the refusals."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings

from tracks.errors import DailyUploadLimit, StorageQuotaExceeded
from tracks.models import UploadQuota


def _limit(own: int | None, site: int) -> int | None:
    """The limit in force: the user's own, else the site's; None for no limit."""
    value = site if own is None else own
    return value if value > 0 else None


def next_utc_midnight(now: dt.datetime) -> dt.datetime:
    day = now.astimezone(dt.UTC).date() + dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


@dataclass(frozen=True)
class UploadAllowance:
    """A user's limits (None: none) and usage at `now`."""

    now: dt.datetime
    storage_bytes_limit: int | None
    stored_bytes: int
    daily_bytes_limit: int | None
    day_bytes: int
    daily_tracks_limit: int | None
    day_tracks: int
    # Resumable uploads under way: they count against every limit from the
    # moment they open, as if their tracks were already made.
    open_uploads: int = 0
    open_upload_bytes: int = 0

    @classmethod
    def of(
        cls,
        quota: UploadQuota,
        *,
        stored_bytes: int,
        now: dt.datetime,
        open_uploads: int = 0,
        open_upload_bytes: int = 0,
    ) -> UploadAllowance:
        """From the user's row; the day's counters count only on their day."""
        today = quota.day == now.astimezone(dt.UTC).date()
        return cls(
            now=now,
            storage_bytes_limit=_limit(
                quota.storage_bytes_limit, settings.TRACK_QUOTA_BYTES
            ),
            stored_bytes=stored_bytes,
            daily_bytes_limit=_limit(
                quota.daily_bytes_limit, settings.TRACK_DAILY_UPLOAD_BYTES
            ),
            day_bytes=quota.day_bytes if today else 0,
            daily_tracks_limit=_limit(
                quota.daily_tracks_limit, settings.TRACK_DAILY_UPLOAD_TRACKS
            ),
            day_tracks=quota.day_tracks if today else 0,
            open_uploads=open_uploads,
            open_upload_bytes=open_upload_bytes,
        )

    @property
    def resets_at(self) -> dt.datetime:
        return next_utc_midnight(self.now)

    def refuse_if_over(self, *, size: int) -> None:
        """Raise if one more track of `size` bytes breaks a limit."""
        held = self.open_upload_bytes
        if (
            self.storage_bytes_limit is not None
            and self.stored_bytes + held + size > self.storage_bytes_limit
        ):
            raise StorageQuotaExceeded(
                details={
                    "storage_bytes_limit": self.storage_bytes_limit,
                    "stored_bytes": self.stored_bytes,
                    "open_upload_bytes": held,
                    "upload_bytes": size,
                }
            )
        retry = {"Retry-After": str(int((self.resets_at - self.now).total_seconds()))}
        if (
            self.daily_tracks_limit is not None
            and self.day_tracks + self.open_uploads + 1 > self.daily_tracks_limit
        ):
            raise DailyUploadLimit(
                f"You may upload {self.daily_tracks_limit} tracks a day.",
                code="daily_track_limit",
                details={
                    "daily_tracks_limit": self.daily_tracks_limit,
                    "day_tracks": self.day_tracks,
                    "open_uploads": self.open_uploads,
                    "resets_at": self.resets_at.isoformat(),
                },
                headers=retry,
            )
        if (
            self.daily_bytes_limit is not None
            and self.day_bytes + held + size > self.daily_bytes_limit
        ):
            raise DailyUploadLimit(
                f"You may upload {self.daily_bytes_limit} bytes a day.",
                code="daily_byte_limit",
                details={
                    "daily_bytes_limit": self.daily_bytes_limit,
                    "day_bytes": self.day_bytes,
                    "open_upload_bytes": held,
                    "upload_bytes": size,
                    "resets_at": self.resets_at.isoformat(),
                },
                headers=retry,
            )
