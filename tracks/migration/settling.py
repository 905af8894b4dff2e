"""Settling: flip verified rows, record failures, remove copies of deleted rows."""

from __future__ import annotations

import logging
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.db.models import Case, CharField, Value, When
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
    held = Track.objects.filter(
        pk__in=pks,
        migration_runner=runner,
        storage_backend=source,
        migration_lease_until__gte=now,
    )
    # Recorded before the flip: a crash between the two is reconciled by the
    # next run, which finds the verified copy and flips without copying.
    held.update(migration_state=MigrationState.VERIFIED)
    keys = per_row_values({t.pk: track_key(t) for t, _ in verified})
    etags = per_row_values(
        {t.pk: (o.etag if target == StorageBackend.S3 else "") for t, o in verified}
    )
    with transaction.atomic():
        flipped = held.update(
            storage_backend=target,
            # Rows older than storage_key get the name they were copied to.
            storage_key=keys,
            storage_etag=etags,
            storage_verified_at=now,
            migration_state=MigrationState.FLIPPED,
            migration_lease_until=None,
            migration_error="",
        )
        if flipped == len(pks):
            ids = set(pks)
        else:
            # Some rows were lost (lease run out, or deleted): ours are the
            # rows this update stamped (it holds their locks until commit).
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


def per_row_values(values: dict[Any, str]) -> Case:
    """A CASE giving each row (by id) its own value, for one bulk UPDATE."""
    return Case(
        *[When(pk=pk, then=Value(value)) for pk, value in values.items()],
        output_field=CharField(),
    )


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
