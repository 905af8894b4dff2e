"""The Track model: one uploaded original and where its bytes live."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

# The storage tally of tracks (mediastore.tally): rows and bytes per backend.
TRACKS_TALLY = "tracks"


class StorageBackend(models.TextChoices):
    LOCAL = "local", "Local disk"
    S3 = "s3", "S3"


class MigrationState(models.TextChoices):
    CLAIMED = "claimed", "Claimed"
    COPYING = "copying", "Copying"
    VERIFIED = "verified", "Verified"
    FLIPPED = "flipped", "Flipped"
    FAILED = "failed", "Failed"


class Visibility(models.TextChoices):
    PUBLIC = "public", "Public"
    UNLISTED = "unlisted", "Unlisted"
    PRIVATE = "private", "Private"


# Visibilities under which anyone with the link may play a track.
SHARED_VISIBILITIES = (Visibility.PUBLIC, Visibility.UNLISTED)


class TrackStatus(models.TextChoices):
    READY = "ready", "Ready"
    # A resumable upload's track between its last byte and its processing:
    # a row with no stored bytes yet, seen only by its owner's API.
    PROCESSING = "processing", "Processing"


class ReadyTrackManager(models.Manager["Track"]):
    """Tracks whose bytes are stored: what storage, migration, audits, tallies
    and every other reader see. `Track.all_objects` adds those processing."""

    def get_queryset(self) -> models.QuerySet[Track]:
        return super().get_queryset().filter(status=TrackStatus.READY)


class Track(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="tracks"
    )
    title = models.CharField(max_length=200)
    visibility = models.CharField(
        max_length=16, choices=Visibility.choices, default=Visibility.PRIVATE
    )
    original_filename = models.CharField(max_length=255)
    mime_type = models.CharField(max_length=64)
    size_bytes = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    duration_seconds = models.FloatField()
    storage_backend = models.CharField(
        max_length=16,
        choices=StorageBackend.choices,
        default=StorageBackend.LOCAL,
        db_default=StorageBackend.LOCAL,
    )
    # The object name, the same on both backends (the S3 key when on s3).
    # NULL, not "", for rows from before the column existed (the schema says so).
    storage_key = models.CharField(max_length=512, null=True, blank=True)  # noqa: DJ001
    # The S3 ETag of the verified object (the server's MD5, or MD5 of part
    # MD5s), so a listing can check every object without reading it; "" on
    # local disk and for rows moved before it was recorded.
    storage_etag = models.CharField(max_length=80, blank=True, default="")
    # When the bytes at the current location were last checked against sha256.
    storage_verified_at = models.DateTimeField(null=True, blank=True)
    # Per-row state of the storage migration (see tracks/migration.py), kept
    # on the row so a crash anywhere is reconcilable from the database.
    migration_state = models.CharField(
        max_length=16, choices=MigrationState.choices, blank=True, default=""
    )
    migration_target = models.CharField(
        max_length=16, choices=StorageBackend.choices, blank=True, default=""
    )
    migration_runner = models.CharField(max_length=128, blank=True, default="")
    migration_lease_until = models.DateTimeField(null=True, blank=True)
    migration_error = models.CharField(max_length=500, blank=True, default="")
    # A takedown (e.g. a DMCA notice): every playback route answers 451.
    taken_down_at = models.DateTimeField(null=True, blank=True)
    takedown_reason = models.CharField(max_length=500, blank=True, default="")
    status = models.CharField(
        max_length=16,
        choices=TrackStatus.choices,
        default=TrackStatus.READY,
        db_default=TrackStatus.READY,
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ReadyTrackManager()
    all_objects = models.Manager()  # noqa: DJ012 (a manager, not a field)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(storage_backend__in=["local", "s3"]),
                name="track_storage_backend_valid",
            )
        ]
        indexes = [
            # The API's list (own or public, newest first, by cursor): walked
            # backwards from the cursor, each row checked against the filter.
            models.Index(fields=["-created_at", "-id"], name="track_created"),
            models.Index(fields=["owner", "-created_at"], name="track_owner_created"),
            models.Index(
                fields=["visibility", "-created_at"], name="track_visibility_created"
            ),
            # What a storage migration claims from, in id order: only the
            # rows still on the source backend (see tracks/migration/claims.py).
            models.Index(
                fields=["id"],
                name="track_local_by_id",
                condition=models.Q(storage_backend="local"),
            ),
            models.Index(
                fields=["id"],
                name="track_s3_by_id",
                condition=models.Q(storage_backend="s3"),
            ),
            # Rows some runner holds right now (a few hundred at most).
            models.Index(
                fields=["migration_lease_until"],
                name="track_migration_busy",
                condition=models.Q(
                    migration_state__in=["claimed", "copying", "verified"]
                ),
            ),
            models.Index(
                fields=["id"],
                name="track_migration_failed",
                condition=models.Q(migration_state="failed"),
            ),
        ]

    def __str__(self) -> str:
        return self.title


class MigrationRunStatus(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    INTERRUPTED = "interrupted", "Interrupted"


class StorageMigrationRun(models.Model):
    """One run of `migrate_storage` (or a move queued from the admin)."""

    target = models.CharField(max_length=16, choices=StorageBackend.choices)
    started_by = models.CharField(max_length=150, blank=True, default="")
    hostname = models.CharField(max_length=255)
    pid = models.IntegerField()
    options = models.JSONField(default=dict)
    status = models.CharField(
        max_length=16,
        choices=MigrationRunStatus.choices,
        default=MigrationRunStatus.RUNNING,
    )
    selected = models.IntegerField(default=0)
    selected_bytes = models.BigIntegerField(default=0)
    moved = models.IntegerField(default=0)
    already_there = models.IntegerField(default=0)
    skipped = models.IntegerField(default=0)
    failed = models.IntegerField(default=0)
    bytes_moved = models.BigIntegerField(default=0)
    failures = models.JSONField(default=dict, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    heartbeat_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [
            models.Index(fields=["-started_at"], name="migration_run_started"),
        ]

    def __str__(self) -> str:
        return f"run {self.pk} to {self.target} ({self.status})"

    @property
    def done(self) -> int:
        return self.moved + self.already_there + self.skipped + self.failed

    @property
    def elapsed_seconds(self) -> float:
        end = self.finished_at or self.heartbeat_at
        return max((end - self.started_at).total_seconds(), 1e-6)

    @property
    def bytes_per_second(self) -> float:
        return self.bytes_moved / self.elapsed_seconds

    @property
    def files_per_second(self) -> float:
        return self.done / self.elapsed_seconds

    @property
    def eta_seconds(self) -> float | None:
        remaining = self.selected - self.done
        if remaining <= 0:
            return 0.0
        rate = self.files_per_second
        return remaining / rate if rate > 0 else None


class UploadQuota(models.Model):
    """A user's upload limits (blank: the site's) and what counts against them.

    One row per user who has uploaded, made on the first upload. Uploads lock
    it, so two at once cannot both slip under a limit.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="upload_quota",
    )
    # Limits for this user: blank takes the site's setting, 0 means none.
    storage_bytes_limit = models.PositiveBigIntegerField(
        null=True,
        blank=True,
        help_text="Bytes of tracks the user may keep. Blank: TRACK_QUOTA_BYTES; "
        "0: no limit.",
    )
    daily_bytes_limit = models.PositiveBigIntegerField(
        null=True,
        blank=True,
        help_text="Bytes the user may upload per UTC day. Blank: "
        "TRACK_DAILY_UPLOAD_BYTES; 0: no limit.",
    )
    daily_tracks_limit = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Tracks the user may upload per UTC day. Blank: "
        "TRACK_DAILY_UPLOAD_TRACKS; 0: no limit.",
    )
    # Usage, kept by track_create and the deletion receiver: the bytes of the
    # user's tracks now, and what they uploaded on `day` (deleting a track
    # frees storage, not the day's allowance).
    stored_bytes = models.BigIntegerField(default=0)
    day = models.DateField(null=True, blank=True)
    day_bytes = models.BigIntegerField(default=0)
    day_tracks = models.IntegerField(default=0)

    class Meta:
        # The admin's list, biggest uploaders first.
        indexes = [models.Index(fields=["-stored_bytes"], name="upload_quota_stored")]

    def __str__(self) -> str:
        return f"upload quota of user {self.user_id}"


class UploadStatus(models.TextChoices):
    RECEIVING = "receiving", "Receiving"
    PROCESSING = "processing", "Processing"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"
    EXPIRED = "expired", "Expired"


# Sessions still holding staged bytes and counting against the quota.
OPEN_UPLOAD_STATUSES = (UploadStatus.RECEIVING, UploadStatus.PROCESSING)


class UploadTransport(models.TextChoices):
    TUS = "tus", "tus"
    S3 = "s3", "S3 multipart"


class UploadSession(models.Model):
    """A resumable upload: bytes staged (on disk for tus, in the bucket for S3
    multipart) until they are all in, then processed off the request path
    into a track."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    transport = models.CharField(
        max_length=8, choices=UploadTransport.choices, default=UploadTransport.TUS
    )
    # S3 multipart: the staging object's key (ours, under uploads/) and the
    # bucket's multipart upload id.
    s3_key = models.CharField(max_length=512, blank=True, default="")
    s3_upload_id = models.CharField(max_length=1024, blank=True, default="")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="uploads"
    )
    length = models.BigIntegerField(help_text="Declared size in bytes.")
    offset = models.BigIntegerField(default=0, help_text="Bytes received so far.")
    filename = models.CharField(max_length=255, blank=True, default="")
    title = models.CharField(max_length=200, blank=True, default="")
    visibility = models.CharField(
        max_length=16, choices=Visibility.choices, default=Visibility.PRIVATE
    )
    status = models.CharField(
        max_length=16, choices=UploadStatus.choices, default=UploadStatus.RECEIVING
    )
    error_code = models.CharField(max_length=64, blank=True, default="")
    error_message = models.CharField(max_length=500, blank=True, default="")
    track = models.ForeignKey(
        Track, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # Moved on by every chunk: an abandoned session expires this long after
    # its last byte (UPLOAD_SESSION_TTL).
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["owner", "-created_at"], name="upload_owner_created"),
            # The admin's list, newest first.
            models.Index(fields=["-created_at"], name="upload_created"),
            # What the expiry sweep reads, and the per-user sum of uploads
            # under way that every upload checks: the open ones only, however
            # many a user has finished.
            models.Index(
                fields=["expires_at"],
                name="upload_open_expiry",
                condition=models.Q(status__in=["receiving", "processing"]),
            ),
            models.Index(
                fields=["owner"],
                name="upload_open_owner",
                condition=models.Q(status__in=["receiving", "processing"]),
            ),
        ]

    def __str__(self) -> str:
        return f"upload {self.pk} ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_UPLOAD_STATUSES
