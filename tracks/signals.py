"""Signal receivers of tracks: cache invalidation and the storage tally."""

from __future__ import annotations

from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from mediastore.tally import tally_add
from tracks.models import TRACKS_TALLY, Track, TrackStatus, UploadQuota
from tracks.selectors import playback_cache_key


@receiver(post_save, sender=Track)
@receiver(post_delete, sender=Track)
def forget_playback_columns(
    sender: type[Track], instance: Track, **kwargs: Any
) -> None:
    key = playback_cache_key(instance.pk)
    cache.delete(key)
    # Again after commit: a reader between the save and the commit may have
    # cached the old row.
    transaction.on_commit(lambda: cache.delete(key))


@receiver(post_delete, sender=Track)
def count_deleted_track(sender: type[Track], instance: Track, **kwargs: Any) -> None:
    # Every deletion (the API's, the admin's, a user's cascade) passes here,
    # inside the deleting transaction, so the tally and the rows agree. A
    # processing track was never counted (nor charged to the quota, below).
    if instance.status != TrackStatus.READY:
        return
    tally_add(
        kind=TRACKS_TALLY,
        backend=instance.storage_backend,
        rows=-1,
        bytes=-instance.size_bytes,
    )


@receiver(post_delete, sender=Track)
def free_upload_quota(sender: type[Track], instance: Track, **kwargs: Any) -> None:
    # The storage quota counts what a user keeps; the day's uploads stay
    # counted, or deleting and uploading again would get round the limit.
    if instance.status != TrackStatus.READY:
        return
    UploadQuota.objects.filter(user_id=instance.owner_id).update(
        stored_bytes=Greatest(F("stored_bytes") - instance.size_bytes, 0)
    )
