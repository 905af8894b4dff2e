"""Files attached to tracks that move with them: an extension point of tracks.

`migrate_storage` moves a track's original; apps that store more files on
the track's backend (streaming's HLS packages) register a provider here from
their `AppConfig.ready()`, so tracks never imports them. For each claimed
batch, the migration asks every provider for the groups of files of those
tracks on the source backend, copies and verifies each group's files after
the track's original, and calls the provider's `flip` inside the same
transaction that flips the tracks. The audit (in key order, beside a
listing) and the local purge use the same groups; `--dry-run` reads the
provider's storage tally.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from django.db.models import QuerySet

from mediastore.tally import Tally


@dataclass(frozen=True)
class AttachedFile:
    """One file of a group: its object name (the same on both backends)."""

    key: str
    size: int
    content_type: str
    cache_control: str | None = None
    # When the provider records it; otherwise the copy computes it from the
    # source bytes (and S3's sha256 metadata checks the other direction).
    sha256: str | None = None
    # The recorded S3 ETag of the verified object, while the group is on S3.
    etag: str = ""


@dataclass(frozen=True)
class Attachment:
    """A group of files that moves as one with its track (an HLS package)."""

    provider: str
    ident: Any  # the provider's row id
    track_id: Any
    label: str  # shown in reports (a package's content hash)
    files: tuple[AttachedFile, ...]
    backend: str = ""
    # What `flip` re-checks, so a group rebuilt since it was read stays put.
    version: Any = None

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


TrackIds = Iterable[Any] | QuerySet[Any]


class AttachmentProvider(Protocol):
    """What an app registers. `name` names its counters and failure reasons
    (`<name>_files`, `<name>_bytes`, `missing_<name>_file`)."""

    name: str
    # Object-name prefixes that hold only this provider's files ("hls/").
    prefixes: tuple[str, ...]

    def attached(
        self, *, backend: str, track_ids: TrackIds | None = None
    ) -> Iterator[Attachment]:
        """Complete groups recorded on `backend` (of these tracks, or all)."""
        ...

    def totals(self, *, backend: str, track_ids: TrackIds) -> tuple[int, int]:
        """Files and bytes of the groups of a few tracks (--track, --limit)."""
        ...

    def tally(self, *, backend: str) -> Tally:
        """Groups, files and bytes on `backend`, from its storage tally."""
        ...

    def flip(
        self,
        *,
        groups: list[Attachment],
        source: str,
        target: str,
        etags: dict[Any, dict[str, str]],
    ) -> int:
        """Record `groups` on `target`, with the verified ETag of each file
        (by group ident, then key) when the target is S3. Runs inside the
        track flip's transaction; only groups still on `source` at `version`
        move."""
        ...

    def owned(self, keys: list[str]) -> set[str]:
        """Which of these object names (under `prefixes`) belong to a group
        this provider records, in any state, on any backend."""
        ...

    def in_key_order(self, *, backend: str) -> Iterator[Attachment]:
        """Every complete group on `backend`, ordered by their files'
        object names (as a listing of `prefixes` is), for audits."""
        ...


_providers: dict[str, AttachmentProvider] = {}


def attachment_provider_register(provider: AttachmentProvider) -> None:
    """Register `provider` (from an AppConfig.ready()); the same name replaces."""
    _providers[provider.name] = provider


def attachment_providers() -> list[AttachmentProvider]:
    return list(_providers.values())


def attachments_of(
    *, track_ids: list[Any], backend: str
) -> dict[Any, list[Attachment]]:
    """Every provider's groups of these tracks on `backend`, by track id."""
    found: dict[Any, list[Attachment]] = {}
    if not track_ids:
        return found
    for provider in attachment_providers():
        for group in provider.attached(backend=backend, track_ids=track_ids):
            found.setdefault(group.track_id, []).append(group)
    return found


def attachments_flip(
    *,
    groups: list[Attachment],
    source: str,
    target: str,
    etags: dict[Any, dict[str, str]],
) -> int:
    """Flip groups through their providers; call inside the track flip."""
    flipped = 0
    for provider in attachment_providers():
        mine = [g for g in groups if g.provider == provider.name]
        if mine:
            flipped += provider.flip(
                groups=mine, source=source, target=target, etags=etags
            )
    return flipped
