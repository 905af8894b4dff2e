"""The tracks app: upload, storage and playback of original audio files."""

from django.apps import AppConfig


class TracksConfig(AppConfig):
    name = "tracks"
    verbose_name = "Tracks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.core.signals import setting_changed

        from tracks import signals  # noqa: F401  (cache invalidation receivers)
        from tracks.playback import playback_cache_reset
        from tracks.storage import storage_reset

        # Tests switch backends and signers at run time.
        setting_changed.connect(storage_reset)
        setting_changed.connect(playback_cache_reset)
