"""The Track model: one uploaded original and where its bytes live."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class StorageBackend(models.TextChoices):
    LOCAL = "local", "Local disk"
    S3 = "s3", "S3"


class Visibility(models.TextChoices):
    PUBLIC = "public", "Public"
    UNLISTED = "unlisted", "Unlisted"
    PRIVATE = "private", "Private"


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
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(storage_backend__in=["local", "s3"]),
                name="track_storage_backend_valid",
            )
        ]
        indexes = [
            models.Index(fields=["owner", "-created_at"], name="track_owner_created"),
            models.Index(
                fields=["visibility", "-created_at"], name="track_visibility_created"
            ),
            models.Index(
                fields=["storage_backend"],
                name="track_on_s3",
                condition=models.Q(storage_backend="s3"),
            ),
        ]

    def __str__(self) -> str:
        return self.title
