"""Signal receivers of tracks: only cache invalidation, nothing else."""

from __future__ import annotations

from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from tracks.models import Track
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
