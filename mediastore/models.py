"""Tallies of what is stored where, kept by the writes so reads never count rows."""

from __future__ import annotations

from django.db import models


class StorageTally(models.Model):
    """Rows, files and bytes of one kind of thing on one backend.

    `name` is "<kind>:<backend>", e.g. "tracks:s3" or "package:local". Every
    write that adds, removes or moves such a thing changes its tally in the
    same transaction (`mediastore.tally`), so the admin, `/metrics` and
    `migrate_storage --dry-run` read a few rows instead of aggregating a
    table of millions. `manage.py storage_tally --recount` rebuilds them
    from the tables (after bulk changes made outside the app).
    """

    name = models.CharField(max_length=64, primary_key=True)
    rows = models.BigIntegerField(default=0)
    files = models.BigIntegerField(default=0)
    bytes = models.BigIntegerField(default=0)
    recounted_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name}: {self.rows} rows, {self.files} files, {self.bytes} bytes"
