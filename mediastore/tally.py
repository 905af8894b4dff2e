"""Storage tallies: what is stored where, changed by every write that changes it.

A kind ("tracks", "package") registers how to count itself from its tables;
its writes call `tally_add` / `tally_move` inside their own transactions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.db import transaction
from django.db.models import BigIntegerField, Case, F, When
from django.utils import timezone

from mediastore.files import BACKENDS
from mediastore.models import StorageTally


@dataclass(frozen=True)
class Tally:
    rows: int = 0
    files: int = 0
    bytes: int = 0


# kind -> a function counting, per backend, from the tables (the recount).
Counter = Callable[[], dict[str, Tally]]
_counters: dict[str, Counter] = {}


def tally_kind_register(kind: str, counter: Counter) -> None:
    """Register a kind of stored thing and how to count it from scratch."""
    _counters[kind] = counter


def registered_kinds() -> list[str]:
    return sorted(_counters)


def _name(kind: str, backend: str) -> str:
    return f"{kind}:{backend}"


def tally_add(
    *, kind: str, backend: str, rows: int = 0, files: int = 0, bytes: int = 0
) -> None:
    """Add (or, negative, remove) to a tally. Call inside the write's transaction."""
    if not (rows or files or bytes):
        return
    name = _name(kind, backend)
    updated = StorageTally.objects.filter(name=name).update(
        rows=F("rows") + rows, files=F("files") + files, bytes=F("bytes") + bytes
    )
    if not updated:
        # The first of its kind; a racing creator makes this a retry.
        with transaction.atomic():
            _, created = StorageTally.objects.select_for_update().get_or_create(
                name=name, defaults={"rows": rows, "files": files, "bytes": bytes}
            )
            if not created:
                StorageTally.objects.filter(name=name).update(
                    rows=F("rows") + rows,
                    files=F("files") + files,
                    bytes=F("bytes") + bytes,
                )


def tally_move(*, kind: str, source: str, target: str, tally: Tally) -> None:
    """Move things between backends (a storage migration's flip), in one
    UPDATE of both tallies."""
    if not (tally.rows or tally.files or tally.bytes):
        return
    names = {_name(kind, source): -1, _name(kind, target): 1}

    def moved(field: str, amount: int) -> Case:
        return Case(
            *[When(name=n, then=F(field) + sign * amount) for n, sign in names.items()],
            default=F(field),
            output_field=BigIntegerField(),
        )

    updated = StorageTally.objects.filter(name__in=names).update(
        rows=moved("rows", tally.rows),
        files=moved("files", tally.files),
        bytes=moved("bytes", tally.bytes),
    )
    if updated < len(names):
        # A backend's first thing: its tally row is made now.
        have = set(
            StorageTally.objects.filter(name__in=names).values_list("name", flat=True)
        )
        for backend, sign in ((source, -1), (target, 1)):
            if _name(kind, backend) not in have:
                tally_add(
                    kind=kind,
                    backend=backend,
                    rows=sign * tally.rows,
                    files=sign * tally.files,
                    bytes=sign * tally.bytes,
                )


def tally_read(*, kind: str) -> dict[str, Tally]:
    """A kind's tally on every backend (zeros where there is none)."""
    rows = {
        t.name: t
        for t in StorageTally.objects.filter(
            name__in=[_name(kind, b) for b in BACKENDS]
        )
    }
    found: dict[str, Tally] = {}
    for backend in BACKENDS:
        row = rows.get(_name(kind, backend))
        found[backend] = (
            Tally(rows=row.rows, files=row.files, bytes=row.bytes) if row else Tally()
        )
    return found


def tally_recount(*, kinds: list[str] | None = None) -> dict[str, dict[str, Tally]]:
    """Count every registered kind from its tables and store the result.

    The one full scan of the tables: run after changes made outside the app
    (bulk SQL, restores). Rows are locked while counting, so writes that
    change a tally meanwhile wait and then apply on top of the new count.
    """
    counted: dict[str, dict[str, Tally]] = {}
    for kind in kinds or sorted(_counters):
        with transaction.atomic():
            names = [_name(kind, b) for b in BACKENDS]
            for name in names:
                StorageTally.objects.get_or_create(name=name)
            list(StorageTally.objects.select_for_update().filter(name__in=names))
            totals = _counters[kind]()
            now = timezone.now()
            for backend in BACKENDS:
                tally = totals.get(backend, Tally())
                StorageTally.objects.filter(name=_name(kind, backend)).update(
                    rows=tally.rows,
                    files=tally.files,
                    bytes=tally.bytes,
                    recounted_at=now,
                )
            counted[kind] = {b: totals.get(b, Tally()) for b in BACKENDS}
    return counted
