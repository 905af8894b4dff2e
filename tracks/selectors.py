"""Reads of tracks: what a user may see, and storage totals."""

from __future__ import annotations

import contextlib
import re
import uuid
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone

from mediastore.backends import s3_storage
from mediastore.tally import Tally, tally_read
from tracks.errors import TrackProcessing, TrackTakenDown, UploadNotFound
from tracks.models import (
    OPEN_UPLOAD_STATUSES,
    SHARED_VISIBILITIES,
    TRACKS_TALLY,
    MigrationRunStatus,
    MigrationState,
    StorageBackend,
    StorageMigrationRun,
    Track,
    TrackStatus,
    UploadQuota,
    UploadSession,
    Visibility,
)
from tracks.quotas import UploadAllowance
from veza import metrics
from veza.errors import Forbidden, NotFound
from veza.metrics import StorageFigures


def _visible_to(user: Any, visibilities: Any) -> Q:
    """Shared and ready tracks, and the user's own, processing ones too."""
    visible = Q(visibility__in=visibilities, status=TrackStatus.READY)
    if user.is_authenticated:
        visible |= Q(owner=user)
    return visible


def track_list_visible(*, user: Any) -> QuerySet[Track]:
    """The user's own tracks and everyone's public ones, newest first."""
    return (
        Track.all_objects.filter(_visible_to(user, [Visibility.PUBLIC]))
        .select_related("owner")
        .order_by("-created_at")
    )


SHA256_PREFIX = re.compile(r"[0-9a-f]{6,64}")


def track_search(*, queryset: QuerySet[Track], term: str) -> QuerySet[Track]:
    """Tracks matching a staff search, each arm one an index serves on
    PostgreSQL: the exact id, a SHA-256 prefix (six hex digits or more), an
    owner's username, exactly (looked up first, so the arm is a plain
    `owner_id IN (...)`), or a piece of the title (the trigram index)."""
    term = term.strip()
    if not term:
        return queryset
    match = Q(title__icontains=term)
    with contextlib.suppress(ValueError):
        match |= Q(pk=uuid.UUID(term))
    if SHA256_PREFIX.fullmatch(term.lower()):
        match |= Q(sha256__startswith=term.lower())
    owners = list(
        get_user_model().objects.filter(username=term).values_list("pk", flat=True)[:10]
    )
    if owners:
        match |= Q(owner_id__in=owners)
    return queryset.filter(match)


def track_get_visible(*, user: Any, track_id: uuid.UUID | str) -> Track:
    """A track the user may see: their own, public or unlisted. Else 404."""
    track = (
        Track.all_objects.filter(_visible_to(user, SHARED_VISIBILITIES), pk=track_id)
        .select_related("owner")
        .first()
    )
    if track is None:
        raise NotFound("No such track.", code="track_not_found")
    return track


PLAYBACK_FIELDS = (
    "id",
    "owner_id",
    "visibility",
    "mime_type",
    "original_filename",
    "size_bytes",
    "sha256",
    "storage_backend",
    "storage_key",
    "taken_down_at",
    "status",
)


# Seconds a track's playback columns stay cached. Every write path clears
# the entry (tracks/signals.py, migration flips), so this only bounds staleness
# from writes made outside the app.
PLAYBACK_CACHE_SECONDS = 60

# Bound once: .labels() validates and takes a lock on every call.
_COLUMNS_HIT = metrics.CACHE_HITS.labels("track_playback")
_COLUMNS_MISS = metrics.CACHE_MISSES.labels("track_playback")


def playback_cache_key(track_id: uuid.UUID | str) -> str:
    return f"veza:track-playback:{track_id}"


def track_get_playable(*, user: Any, track_id: uuid.UUID | str) -> Track:
    """`track_get_visible` for the playback hot path, usually without a query.

    The columns playback needs are cached per track; the access rule is
    applied to them here, on every call. The other columns of the returned
    track are deferred: reading one queries the database, as after `.only()`.
    """
    key = playback_cache_key(track_id)
    fields = cache.get(key)
    if fields is None:
        _COLUMNS_MISS.inc()
        fields = (
            Track.all_objects.filter(pk=track_id)
            .order_by()
            .values(*PLAYBACK_FIELDS)
            .first()
        )
        if fields is not None:
            cache.set(key, fields, PLAYBACK_CACHE_SECONDS)
    else:
        _COLUMNS_HIT.inc()
    visible = fields is not None and (
        (
            fields["visibility"] in SHARED_VISIBILITIES
            and fields["status"] == TrackStatus.READY
        )
        or (user.is_authenticated and fields["owner_id"] == user.pk)
    )
    if not visible:
        raise NotFound("No such track.", code="track_not_found")
    if fields["status"] != TrackStatus.READY:
        raise TrackProcessing()
    if fields["taken_down_at"] is not None:
        raise TrackTakenDown()
    return _track_from_columns(fields)


def _track_from_columns(fields: dict[str, Any]) -> Track:
    # As a query builds it: the columns not in `fields` are deferred
    # (from_db takes the values in the model's field order).
    names = [f.attname for f in Track._meta.concrete_fields if f.attname in fields]
    return Track.from_db("default", names, [fields[name] for name in names])


def track_get_owned(*, user: Any, track_id: uuid.UUID | str) -> Track:
    """A track the user may change: only its owner. 404 if invisible, else 403."""
    track = track_get_visible(user=user, track_id=track_id)
    if track.owner_id != user.pk:
        raise Forbidden("Only the track's owner can change it.", code="not_track_owner")
    return track


def track_get(*, track_id: uuid.UUID | str) -> Track:
    track = Track.objects.filter(pk=track_id).first()
    if track is None:
        raise NotFound("No such track.", code="track_not_found")
    return track


def track_get_servable(*, track_id: uuid.UUID | str) -> Track:
    """`track_get` for the origin: a taken-down track answers 451."""
    track = track_get(track_id=track_id)
    if track.taken_down_at is not None:
        raise TrackTakenDown()
    return track


def track_storage_overview() -> dict[str, Any]:
    """Rows and bytes per storage backend, and the share on S3.

    Read from the storage tally (two rows), not counted: the admin polls
    this every 2 s per open tab and a catalogue has millions of rows.
    """
    tally = tally_read(kind=TRACKS_TALLY)
    backends: list[dict[str, Any]] = [
        {
            "backend": b.value,
            "label": b.label,
            "count": tally[b.value].rows,
            "bytes": tally[b.value].bytes,
        }
        for b in StorageBackend
    ]
    total = sum(b["count"] for b in backends)
    total_bytes = sum(b["bytes"] for b in backends)
    on_s3 = next(b for b in backends if b["backend"] == StorageBackend.S3)
    return {
        "backends": backends,
        "total_count": total,
        "total_bytes": total_bytes,
        "s3_share_count": on_s3["count"] / total if total else 0.0,
        "s3_share_bytes": on_s3["bytes"] / total_bytes if total_bytes else 0.0,
    }


def track_tally_count() -> dict[str, Tally]:
    """Rows and bytes per backend, counted from the table (the tally's
    recount: a full scan, run on request, never on a hot path)."""
    return {
        r["storage_backend"]: Tally(rows=r["rows"], bytes=r["bytes"] or 0)
        for r in Track.objects.order_by()
        .values("storage_backend")
        .annotate(rows=Count("id"), bytes=Sum("size_bytes"))
    }


def _run_status(run: StorageMigrationRun) -> dict[str, Any]:
    eta = run.eta_seconds
    return {
        "id": run.pk,
        "target": run.target,
        "status": run.status,
        "started_by": run.started_by,
        "host": f"{run.hostname}:{run.pid}",
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "heartbeat_at": run.heartbeat_at.isoformat(),
        "selected": run.selected,
        "done": run.done,
        "moved": run.moved,
        "already_there": run.already_there,
        "skipped": run.skipped,
        "failed": run.failed,
        "failures": run.failures,
        "bytes": run.bytes_moved,
        "progress": run.done / run.selected if run.selected else 1.0,
        "files_per_second": round(run.files_per_second, 1),
        "bytes_per_second": round(run.bytes_per_second),
        "eta_seconds": None if eta is None else round(eta),
    }


def storage_migration_status(
    *, past_runs: int = 20, failed_rows: int = 50
) -> dict[str, Any]:
    """Everything the admin's storage migration page shows, as plain data."""
    runs = list(StorageMigrationRun.objects.order_by("-started_at")[: past_runs + 10])
    running = [r for r in runs if r.status == MigrationRunStatus.RUNNING]
    # Through the partial index of failed rows, in id order: no sort of
    # however many there are.
    failed = (
        Track.objects.filter(migration_state=MigrationState.FAILED)
        .select_related("owner")
        .order_by("pk")[:failed_rows]
    )
    return {
        "overview": track_storage_overview(),
        "running": [_run_status(r) for r in running],
        "past": [
            _run_status(r) for r in runs if r.status != MigrationRunStatus.RUNNING
        ][:past_runs],
        "failed_rows": [
            {
                "id": str(t.pk),
                "title": t.title,
                "owner": t.owner.get_username(),
                "target": t.migration_target,
                "error": t.migration_error,
            }
            for t in failed
        ],
    }


def storage_figures() -> StorageFigures:
    """What /metrics exports about storage: the tallies and running runs."""
    tally = tally_read(kind=TRACKS_TALLY)
    running = StorageMigrationRun.objects.filter(status=MigrationRunStatus.RUNNING)
    return StorageFigures(
        stored={b: (t.rows, t.bytes) for b, t in tally.items()},
        runs=[(str(r.pk), r.target, r.done, r.bytes_per_second) for r in running],
    )


def track_bytes_owned(*, user: Any) -> int:
    """The bytes of all of a user's tracks, summed from the rows."""
    total = Track.objects.filter(owner=user).aggregate(total=Sum("size_bytes"))
    return int(total["total"] or 0)


def open_uploads_of(*, user: Any, besides_track: Any = None) -> tuple[int, int]:
    """How many resumable uploads the user has under way, and their bytes
    (leaving out the one whose processing track is `besides_track`)."""
    sessions = UploadSession.objects.filter(owner=user, status__in=OPEN_UPLOAD_STATUSES)
    if besides_track is not None:
        sessions = sessions.exclude(track_id=besides_track)
    totals = sessions.aggregate(count=Count("pk"), bytes=Sum("length"))
    return int(totals["count"]), int(totals["bytes"] or 0)


def upload_page_bucket() -> str | None:
    """Where the upload page sends parts straight to the bucket (the URL
    prefix its CSP lets it connect to), or None: the page sends over tus
    (tracks not on S3, or UPLOAD_PAGE_S3_DIRECT off)."""
    if not settings.UPLOAD_PAGE_S3_DIRECT or settings.TRACK_STORAGE_BACKEND != "s3":
        return None
    return s3_storage().browser_prefix()


def upload_allowance_of(
    quota: UploadQuota, *, stored_bytes: int, besides_track: Any = None
) -> UploadAllowance:
    """The allowance of a user's quota row, with their uploads under way."""
    count, held = open_uploads_of(user=quota.user_id, besides_track=besides_track)
    return UploadAllowance.of(
        quota,
        stored_bytes=stored_bytes,
        now=timezone.now(),
        open_uploads=count,
        open_upload_bytes=held,
    )


def upload_allowance_get(*, user: Any) -> UploadAllowance:
    """A user's upload limits and usage now (what GET /uploads/quota shows)."""
    quota = UploadQuota.objects.filter(user=user).first()
    if quota is None:
        # Not uploaded through the API yet: the site's limits, nothing today.
        quota = UploadQuota(user_id=getattr(user, "pk", user))
        return upload_allowance_of(quota, stored_bytes=track_bytes_owned(user=user))
    return upload_allowance_of(quota, stored_bytes=quota.stored_bytes)


def upload_session_list(*, user: Any) -> QuerySet[UploadSession]:
    """The caller's resumable uploads, newest first."""
    return UploadSession.objects.filter(owner=user).order_by("-created_at", "-id")


def upload_session_get_owned(*, user: Any, upload_id: uuid.UUID | str) -> UploadSession:
    """One of the caller's uploads; anyone else's is not found, as a missing one."""
    session = UploadSession.objects.filter(owner=user, pk=upload_id).first()
    if session is None:
        raise UploadNotFound()
    return session


def upload_session_get_multipart(
    *, user: Any, upload_id: str, key: str | None
) -> UploadSession:
    """The caller's S3 multipart session with this upload id and key: a key
    or upload id of anyone else's is not found, as a made-up one."""
    session = UploadSession.objects.filter(
        owner=user, s3_upload_id=upload_id, s3_key=key or "", transport="s3"
    ).first()
    if session is None or not upload_id:
        raise UploadNotFound()
    return session
