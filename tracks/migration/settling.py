"""Settling: flip verified rows, record failures, remove copies of deleted rows."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.core.cache import cache
from django.db import connection, models, transaction
from django.utils import timezone

from mediastore.backends import storage_for
from mediastore.errors import StorageUnavailable
from mediastore.tally import Tally, tally_move
from tracks.attachments import attachments_flip
from tracks.migration.copying import Outcome
from tracks.migration.plan import other_backend, track_key
from tracks.models import TRACKS_TALLY, MigrationState, StorageBackend, Track
from tracks.selectors import playback_cache_key

logger = logging.getLogger(__name__)


def tracks_flip(
    *, runner: str, target: str, verified: list[tuple[Track, Outcome]]
) -> set[Any]:
    """Point verified rows at `target`; returns the ids flipped.

    Only rows this runner still holds under a live lease, still on the
    source, are flipped, in one short transaction, together with their
    verified attachments (through the providers) and the storage tallies.
    """
    source = other_backend(target)
    pks = [t.pk for t, _ in verified]
    now = timezone.now()
    with transaction.atomic():
        flipped = _rows_flip(runner=runner, source=source, target=target, now=now,
                             verified=verified)  # fmt: skip
        if flipped == len(pks):
            ids = set(pks)
        else:
            # Some rows were lost (lease run out, or deleted): ours are the
            # rows this flip stamped (it holds their locks until commit).
            ids = set(
                Track.objects.filter(
                    pk__in=pks,
                    migration_runner=runner,
                    storage_backend=target,
                    storage_verified_at=now,
                ).values_list("pk", flat=True)
            )
        moved = [(t, o) for t, o in verified if t.pk in ids]
        tally_move(
            kind=TRACKS_TALLY,
            source=source,
            target=target,
            tally=Tally(rows=len(moved), bytes=sum(t.size_bytes for t, _ in moved)),
        )
        attachments_flip(
            groups=[g for _, o in moved for g in o.attachments],
            source=source,
            target=target,
            etags={
                g.ident: {f.key: o.written.get(f.key, "") for f in g.files}
                for _, o in moved
                for g in o.attachments
            },
        )
    # A bulk update sends no signals: forget the cached playback columns here.
    cache.delete_many([playback_cache_key(pk) for pk in ids])
    return ids


def _rows_flip(
    *,
    runner: str,
    source: str,
    target: str,
    now: datetime,
    verified: list[tuple[Track, Outcome]],
) -> int:
    """One UPDATE per row, sent as one batch; returns the rows flipped.

    Each row gets its own object name (rows older than storage_key get the
    one they were copied to) and verified ETag, so the flip cannot be one
    set-based UPDATE: as a CASE per row it cost the runner's thread most of
    its time in Django's expression building, time the copies waited for
    (docs/BENCHMARKS.md, section 3). Each row is written once here, and was
    written once by its claim: two row versions per move.
    """
    qn = connection.ops.quote_name
    # Identifiers from the model (no db_column renames them); values are
    # parameters.
    sql = (
        f"UPDATE {qn(Track._meta.db_table)} SET "  # noqa: S608
        f"{qn('storage_backend')} = %s, {qn('storage_key')} = %s, "
        f"{qn('storage_etag')} = %s, {qn('storage_verified_at')} = %s, "
        f"{qn('migration_state')} = %s, {qn('migration_lease_until')} = NULL, "
        f"{qn('migration_error')} = '' "
        f"WHERE {qn('id')} = %s AND {qn('migration_runner')} = %s "
        f"AND {qn('storage_backend')} = %s AND {qn('migration_lease_until')} >= %s"
    )
    id_field = Track._meta.get_field("id")
    time_field = Track._meta.get_field("storage_verified_at")
    if not isinstance(id_field, models.UUIDField) or not isinstance(
        time_field, models.DateTimeField
    ):
        raise TypeError("Track ids are UUIDs and storage_verified_at a time")
    stamp = time_field.get_db_prep_value(now, connection)
    params = [
        (
            target,
            track_key(track),
            outcome.etag if target == StorageBackend.S3 else "",
            stamp,
            MigrationState.FLIPPED.value,
            id_field.get_db_prep_value(track.pk, connection),
            runner,
            source,
            stamp,
        )
        for track, outcome in verified
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)
        return int(cursor.rowcount)


def track_fail(*, runner: str, outcome: Outcome) -> None:
    Track.objects.filter(pk=outcome.track_id, migration_runner=runner).update(
        migration_state=MigrationState.FAILED,
        migration_error=f"{outcome.reason}: {outcome.detail}"[:500],
        migration_lease_until=None,
    )


def copies_of_deleted_remove(*, target: str, outcomes: list[Outcome]) -> set[Any]:
    """Remove what copies wrote on `target` for rows deleted meanwhile.

    A track deleted while it was copied lost its bytes on every backend when
    its deletion committed (tracks.services.track_delete), but a copy that
    finished after that wrote them again: they have no row, so they go.
    Returns the ids of the deleted rows.
    """
    ids = {o.track_id for o in outcomes}
    if not ids:
        return set()
    present = set(Track.objects.filter(pk__in=ids).values_list("pk", flat=True))
    gone = ids - present
    keys = [key for o in outcomes if o.track_id in gone for key in o.written]
    if keys:
        try:
            storage_for(target).remove_many(keys)
        except (StorageUnavailable, OSError):
            # Left as orphans for `migrate_storage --verify-only` to report.
            logger.warning("could not remove copies of deleted tracks", exc_info=True)
    return gone
