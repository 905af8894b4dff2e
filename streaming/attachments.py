"""HLS packages as files attached to their tracks, so `migrate_storage` moves them.

Registered with tracks' attachment registry in `StreamingConfig.ready()`:
tracks copies and verifies a ready package's files after its track's
original, then `flip` moves the package's `storage_backend` in the same
transaction as the track's. A package that was rebuilt meanwhile, or that a
build published on the source after the copy, keeps its own
`storage_backend`, which is where the origin reads it from.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from django.core.cache import cache
from django.db import transaction

from cdn.services import cdn_cache_control
from streaming.media_types import hls_content_type, is_playlist
from streaming.models import HlsPackage, PackageStatus
from streaming.playlists import MASTER_NAME
from streaming.services import serving_cache_key
from tracks.attachments import (
    AttachedFile,
    Attachment,
    TrackIds,
    attachment_provider_register,
)

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

    def _ready(self, *, backend: str, track_ids: TrackIds | None) -> Any:
        rows = HlsPackage.objects.filter(
            status=PackageStatus.READY, storage_backend=backend
        )
        if track_ids is not None:
            rows = rows.filter(track_id__in=track_ids)
        return rows

    def attached(
        self, *, backend: str, track_ids: TrackIds | None = None
    ) -> Iterator[Attachment]:
        rows = self._ready(backend=backend, track_ids=track_ids).values_list(
            "pk", "track_id", "content_hash", "files", "finished_at"
        )
        for pk, track_id, content_hash, files, finished_at in rows.iterator(
            chunk_size=200
        ):
            directory = f"{PREFIX}{content_hash}/"
            yield Attachment(
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
                    )
                    for name in sorted(files, key=_copy_order)
                ),
                version=finished_at,
            )

    def totals(self, *, backend: str, track_ids: TrackIds) -> tuple[int, int]:
        count = size = 0
        rows = self._ready(backend=backend, track_ids=track_ids).values_list(
            "files", flat=True
        )
        for files in rows.iterator(chunk_size=500):
            count += len(files)
            size += sum(int(s) for s in files.values())
        return count, size

    def flip(self, *, groups: list[Attachment], source: str, target: str) -> int:
        wanted = {g.ident: g for g in groups}
        # Still ready on the source and not rebuilt since the copy was read.
        current = (
            HlsPackage.objects.select_for_update()
            .filter(pk__in=list(wanted), status=PackageStatus.READY)
            .filter(storage_backend=source)
            .values_list("pk", "finished_at")
        )
        ids = [pk for pk, finished in current if finished == wanted[pk].version]
        if not ids:
            return 0
        HlsPackage.objects.filter(pk__in=ids).update(storage_backend=target)
        # A bulk update sends no signals: the origin's cached view goes here.
        keys = [serving_cache_key(wanted[pk].label) for pk in ids]
        cache.delete_many(keys)
        transaction.on_commit(lambda: cache.delete_many(keys))
        return len(ids)

    def known_keys(self) -> Callable[[str], bool]:
        hashes = set(HlsPackage.objects.values_list("content_hash", flat=True))

        def known(key: str) -> bool:
            head, _, rest = key.partition("/")
            return f"{head}/" == PREFIX and rest.partition("/")[0] in hashes

        return known


def hls_packages_register() -> None:
    """Let `migrate_storage` move, audit and purge packages with their tracks."""
    attachment_provider_register(HlsPackageFiles())
