"""What a move would take: selections, object names and plans from the tallies."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db.models import QuerySet, Sum

from mediastore.tally import tally_read
from tracks.attachments import attachment_providers
from tracks.media_types import CONTENT_TYPES
from tracks.models import TRACKS_TALLY, StorageBackend, Track


def other_backend(target: str) -> str:
    return StorageBackend.LOCAL if target == StorageBackend.S3 else StorageBackend.S3


def track_key(track: Track) -> str:
    """The row's object name; rows older than storage_key get the standard one."""
    return object_name(
        track_id=track.pk,
        storage_key=track.storage_key,
        sha256=track.sha256,
        mime_type=track.mime_type,
    )


def object_name(
    *, track_id: Any, storage_key: str | None, sha256: str, mime_type: str
) -> str:
    """`track_key` from a row's columns, for walks over millions of rows."""
    if storage_key:
        return storage_key
    extension = _EXTENSIONS.get(mime_type, "bin")
    return f"tracks/{track_id}/{sha256}.{extension}"


_EXTENSIONS = {mime: extension for extension, mime in reversed(CONTENT_TYPES.items())}


def migration_selection(
    *, target: str, track_ids: Iterable[str] | None = None
) -> QuerySet[Track]:
    """Rows that a move to `target` would take: those on the other backend."""
    rows = Track.objects.filter(storage_backend=other_backend(target))
    if track_ids:
        rows = rows.filter(pk__in=list(track_ids))
    return rows


def migration_totals(
    *, target: str, track_ids: list[str] | None = None, limit: int | None = None
) -> dict[str, int]:
    """Rows and bytes to move, and rows already on `target`.

    From the storage tallies (a few rows, whatever the table's size), or,
    for a few named tracks, from those rows.
    """
    source = other_backend(target)
    if track_ids:
        rows = Track.objects.filter(pk__in=track_ids)
        moving = rows.filter(storage_backend=source)
        totals = moving.aggregate(bytes=Sum("size_bytes"))
        plan = {
            "rows": moving.count(),
            "bytes": totals["bytes"] or 0,
            "on_target": rows.filter(storage_backend=target).count(),
        }
    else:
        tally = tally_read(kind=TRACKS_TALLY)
        plan = {
            "rows": max(tally[source].rows, 0),
            "bytes": max(tally[source].bytes, 0),
            "on_target": max(tally[target].rows, 0),
        }
    if limit is not None and plan["rows"] > limit:
        # The first `limit` rows in claim order: what the run would take.
        first = migration_selection(target=target).order_by("pk")[:limit]
        plan["rows"] = len(first)
        plan["bytes"] = sum(t.size_bytes for t in first.only("pk", "size_bytes"))
    return plan


def migration_plan(
    *, target: str, track_ids: list[str] | None = None, limit: int | None = None
) -> dict[str, int]:
    """What a run would move (`--dry-run`): rows and bytes, and the attached
    files that move with them (`<provider>_files`, `<provider>_bytes`)."""
    totals = migration_totals(target=target, track_ids=track_ids, limit=limit)
    plan = {"rows": totals["rows"], "bytes": totals["bytes"]}
    source = other_backend(target)
    for provider in attachment_providers():
        if track_ids or limit is not None:
            rows = migration_selection(target=target, track_ids=track_ids)
            if limit is not None:
                rows = rows.order_by("pk")[:limit]
            ids = list(rows.values_list("pk", flat=True))
            files, size = provider.totals(backend=source, track_ids=ids)
        else:
            tally = provider.tally(backend=source)
            files, size = tally.files, tally.bytes
        if files:
            plan[f"{provider.name}_files"] = files
            plan[f"{provider.name}_bytes"] = size
    return plan
