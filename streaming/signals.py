"""Signal receivers of streaming: package uploads, clean up files, clear caches.

Signals, not calls from tracks, because streaming depends on tracks and not
the other way round.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models.signals import post_delete, post_save, pre_delete
from django.dispatch import receiver

from streaming.models import HlsPackage, PackageStatus
from streaming.services import (
    hls_package_delete_files,
    hls_package_request,
    package_tally_add,
    serving_cache_key,
)
from tracks.models import Track, TrackStatus


@receiver(post_save, sender=Track)
def package_new_upload(
    sender: type[Track], instance: Track, created: bool, **kwargs: Any
) -> None:
    # A new track, or a resumable upload's once processed: when it is ready.
    update_fields = kwargs.get("update_fields") or ()
    if (
        settings.HLS_PACKAGE_ON_UPLOAD
        and not kwargs.get("raw")
        and instance.status == TrackStatus.READY
        and (created or "status" in update_fields)
    ):
        hls_package_request(track=instance)


@receiver(post_save, sender=Track)
def forget_track_packages(sender: type[Track], instance: Track, **kwargs: Any) -> None:
    # A takedown or a storage flip changes how the track's packages serve.
    keys = [
        serving_cache_key(h)
        for h in HlsPackage.objects.filter(track_id=instance.pk).values_list(
            "content_hash", flat=True
        )
    ]
    if keys:
        cache.delete_many(keys)
        transaction.on_commit(lambda: cache.delete_many(keys))


@receiver(post_save, sender=HlsPackage)
@receiver(post_delete, sender=HlsPackage)
def forget_package(
    sender: type[HlsPackage], instance: HlsPackage, **kwargs: Any
) -> None:
    key = serving_cache_key(instance.content_hash)
    cache.delete(key)
    transaction.on_commit(lambda: cache.delete(key))


@receiver(post_delete, sender=HlsPackage)
def count_deleted_package(
    sender: type[HlsPackage], instance: HlsPackage, **kwargs: Any
) -> None:
    # In the deleting transaction, so the tally and the rows agree.
    if instance.status == PackageStatus.READY:
        package_tally_add(instance, sign=-1)


@receiver(pre_delete, sender=HlsPackage)
def delete_package_files(
    sender: type[HlsPackage], instance: HlsPackage, **kwargs: Any
) -> None:
    """The files go once the row's deletion (or its track's) has committed,
    from both backends: a storage migration may have copied them already."""
    if getattr(instance, "files_removed", False):
        return  # retired: hls_package_retire removed them before the row
    if instance.status != PackageStatus.READY and not instance.files:
        return
    directory = instance.directory
    names = list(instance.files)
    transaction.on_commit(
        lambda: hls_package_delete_files(directory=directory, names=names)
    )
