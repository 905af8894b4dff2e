"""The tracks app: upload, storage and playback of original audio files."""

from django.apps import AppConfig


class TracksConfig(AppConfig):
    name = "tracks"
    verbose_name = "Tracks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.core.signals import setting_changed

        from mediastore.tally import tally_kind_register
        from tracks import signals  # noqa: F401  (cache and tally receivers)
        from tracks.models import TRACKS_TALLY
        from tracks.playback import playback_cache_reset
        from tracks.selectors import storage_figures, track_tally_count
        from veza.metrics import storage_figures_register

        tally_kind_register(TRACKS_TALLY, track_tally_count)
        storage_figures_register(storage_figures)

        # Tests switch signers at run time.
        setting_changed.connect(playback_cache_reset)
