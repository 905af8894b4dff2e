"""HLS packages as files attached to their tracks, so `migrate_storage` moves them.

Registered with tracks' attachment registry in `StreamingConfig.ready()`:
tracks copies and verifies a ready package's files after its track's
original, then `flip` moves the package's `storage_backend` in the same
transaction as the track's. A package that was rebuilt meanwhile, or that a
build published on the source after the copy, keeps its own
`storage_backend`, which is where the origin reads it from.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.core.cache import cache
from django.db import transaction

from cdn.services import cdn_cache_control
from mediastore.tally import Tally, tally_kind_register, tally_move, tally_read
from streaming.media_types import hls_content_type, is_playlist
from streaming.models import HlsPackage, PackageStatus
from streaming.playlists import MASTER_NAME
from streaming.services import PACKAGE_TALLY, serving_cache_key
from tracks.attachments import (
    AttachedFile,
    Attachment,
    TrackIds,
    attachment_provider_register,
)
from tracks.models import StorageBackend

PREFIX = "hls/"


def _copy_order(name: str) -> tuple[int, str]:
    # Media first, media playlists next, the master last, as a build
    # publishes them (harmless either way: the flip comes after all).
    if name == MASTER_NAME:
        return (2, name)
    return (1 if is_playlist(name) else 0, name)


class HlsPackageFiles:
    """The ready packages of tracks, as groups of files under `hls/<hash>/`."""

    name = "package"
    prefixes: tuple[str, ...] = (PREFIX,)
    _columns = (
        "pk",
        "track_id",
        "content_hash",
        "files",
        "etags",
        "finished_at",
        "storage_backend",
    )

    def _ready(
        self, *, backend: str, track_ids: TrackIds | None, moving: bool = True
    ) -> Any:
        rows = HlsPackage.objects.filter(
            status=PackageStatus.READY, storage_backend=backend
        )
        if moving:
            # Superseded packages stay where they are until they are retired
            # (copying what is about to go would only cost requests, and
            # race its deletion); the audit still checks them.
            rows = rows.filter(superseded_at__isnull=True)
        if track_ids is not None:
            rows = rows.filter(track_id__in=track_ids)
        return rows

    def _group(self, row: tuple[Any, ...]) -> Attachment:
        pk, track_id, content_hash, files, etags, finished_at, backend = row
        directory = f"{PREFIX}{content_hash}/"
        return Attachment(
            provider=self.name,
            ident=pk,
            track_id=track_id,
            label=content_hash,
            files=tuple(
                AttachedFile(
                    key=directory + name,
                    size=int(files[name]),
                    content_type=hls_content_type(name),
                    cache_control=cdn_cache_control(name=name),
                    etag=(etags or {}).get(name, ""),
                )
                for name in sorted(files, key=_copy_order)
            ),
            version=finished_at,
            backend=backend,
        )

    def attached(
        self, *, backend: str, track_ids: TrackIds | None = None
    ) -> Iterator[Attachment]:
        rows = self._ready(backend=backend, track_ids=track_ids)
        for row in rows.values_list(*self._columns).iterator(chunk_size=200):
            yield self._group(row)

    def in_key_order(self, *, backend: str) -> Iterator[Attachment]:
        # content_hash is unique (indexed), and every file of a package sits
        # under hls/<content_hash>/, so this is the listing's order.
        rows = self._ready(backend=backend, track_ids=None, moving=False)
        rows = rows.order_by("content_hash")
        for row in rows.values_list(*self._columns).iterator(chunk_size=500):
            yield self._group(row)

    def owned(self, keys: list[str]) -> set[str]:
        # Any package row, even one being built, owns its directory.
        hashes = {
            k.split("/")[1] for k in keys if k.startswith(PREFIX) and k.count("/") > 1
        }
        known = set(
            HlsPackage.objects.filter(content_hash__in=hashes).values_list(
                "content_hash", flat=True
            )
        )
        return {k for k in keys if k.split("/")[1] in known}

    def totals(self, *, backend: str, track_ids: TrackIds) -> tuple[int, int]:
        count = size = 0
        rows = self._ready(backend=backend, track_ids=track_ids).values_list(
            "files", flat=True
        )
        for files in rows.iterator(chunk_size=500):
            count += len(files)
            size += sum(int(s) for s in files.values())
        return count, size

    def tally(self, *, backend: str) -> Tally:
        return tally_read(kind=PACKAGE_TALLY)[backend]

    def flip(
        self,
        *,
        groups: list[Attachment],
        source: str,
        target: str,
        etags: dict[Any, dict[str, str]],
    ) -> int:
        wanted = {g.ident: g for g in groups}
        # Still ready on the source and not rebuilt since the copy was read.
        current = (
            HlsPackage.objects.select_for_update()
            .filter(pk__in=list(wanted), status=PackageStatus.READY)
            .filter(storage_backend=source)
            .values_list("pk", "finished_at", "files", "total_bytes")
        )
        moving = [
            (pk, files, total)
            for pk, finished, files, total in current
            if finished == wanted[pk].version
        ]
        if not moving:
            return 0
        for pk, _, _ in moving:
            directory = f"{PREFIX}{wanted[pk].label}/"
            HlsPackage.objects.filter(pk=pk).update(
                storage_backend=target,
                etags={
                    key.removeprefix(directory): etag
                    for key, etag in etags.get(pk, {}).items()
                }
                if target == StorageBackend.S3
                else {},
            )
        tally_move(
            kind=PACKAGE_TALLY,
            source=source,
            target=target,
            tally=Tally(
                rows=len(moving),
                files=sum(len(files) for _, files, _ in moving),
                bytes=sum(total for _, _, total in moving),
            ),
        )
        # A bulk update sends no signals: the origin's cached view goes here.
        keys = [serving_cache_key(wanted[pk].label) for pk, _, _ in moving]
        cache.delete_many(keys)
        transaction.on_commit(lambda: cache.delete_many(keys))
        return len(moving)


def hls_packages_register() -> None:
    """Let `migrate_storage` move, audit and purge packages with their tracks,
    and keep their storage tally."""
    attachment_provider_register(HlsPackageFiles())
    tally_kind_register(PACKAGE_TALLY, package_tally_count)


def package_tally_count() -> dict[str, Tally]:
    """Ready packages, their files and bytes, per backend (the recount)."""
    counts: dict[str, Tally] = {}
    rows = (
        HlsPackage.objects.filter(status=PackageStatus.READY)
        .values_list("storage_backend", "files", "total_bytes")
        .iterator(chunk_size=2000)
    )
    for backend, files, total in rows:
        have = counts.get(backend, Tally())
        counts[backend] = Tally(
            rows=have.rows + 1,
            files=have.files + len(files),
            bytes=have.bytes + total,
        )
    return counts
