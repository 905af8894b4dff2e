"""The HLS package model: one transcoded ladder of a track and its state."""

from __future__ import annotations

from django.db import models

from tracks.models import StorageBackend, Track


class PackageStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    PROCESSING = "processing", "Processing"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class HlsPackage(models.Model):
    """The files under `hls/<content_hash>/` on `storage_backend`.

    `content_hash` covers the track, its bytes and the encode settings, so the
    same input and settings always name the same directory: a retry rewrites
    it and a finished package never changes.
    """

    track = models.ForeignKey(
        Track, on_delete=models.CASCADE, related_name="hls_packages"
    )
    content_hash = models.CharField(max_length=64, unique=True)
    status = models.CharField(
        max_length=16, choices=PackageStatus.choices, default=PackageStatus.PENDING
    )
    # Where the files are; it follows the track when migrate_storage moves it.
    storage_backend = models.CharField(
        max_length=16, choices=StorageBackend.choices, default=StorageBackend.LOCAL
    )
    # The encode settings the hash covers: {"ladder": [...], "segment_seconds"}.
    settings = models.JSONField(default=dict)
    # Per rung: name, bitrate, bandwidth, average_bandwidth, codecs, segments.
    renditions = models.JSONField(default=list, blank=True)
    # Every file of the package, relative name -> size in bytes.
    files = models.JSONField(default=dict, blank=True)
    # Relative name -> S3 ETag of the verified object, while on S3 (empty on
    # local disk): what a listing-based audit checks each file against.
    etags = models.JSONField(default=dict, blank=True)
    duration_seconds = models.FloatField(null=True, blank=True)
    segment_count = models.IntegerField(default=0)
    total_bytes = models.BigIntegerField(default=0)
    # EBU R128 integrated loudness (LUFS) and true peak (dBTP) of the source.
    loudness_lufs = models.FloatField(null=True, blank=True)
    true_peak_dbtp = models.FloatField(null=True, blank=True)
    error_code = models.CharField(max_length=64, blank=True, default="")
    error = models.CharField(max_length=500, blank=True, default="")
    attempts = models.IntegerField(default=0)
    # Set while processing; past it, the job is taken for crashed.
    lease_until = models.DateTimeField(null=True, blank=True)
    encode_seconds = models.FloatField(null=True, blank=True)
    store_seconds = models.FloatField(null=True, blank=True)
    # Set when a newer package of the track became ready: this one keeps
    # serving the players that hold its URLs for the grace period, then its
    # files and row go (streaming.services.hls_package_retire).
    superseded_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "HLS package"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(
                    status__in=["pending", "processing", "ready", "failed"]
                ),
                name="hls_package_status_valid",
            ),
        ]
        indexes = [
            models.Index(fields=["track", "status"], name="hls_package_track_status"),
            # The retirement sweep reads the few superseded rows, not the table.
            models.Index(
                fields=["superseded_at"],
                name="hls_package_superseded",
                condition=models.Q(superseded_at__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"HLS {self.content_hash[:12]} of {self.track_id} ({self.status})"

    @property
    def directory(self) -> str:
        """The object-name prefix of every file, ending in /."""
        return f"hls/{self.content_hash}/"
