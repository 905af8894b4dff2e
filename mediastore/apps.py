"""The mediastore app: storage backends, the transfer engine and tallies."""

from django.apps import AppConfig


class MediastoreConfig(AppConfig):
    name = "mediastore"
    verbose_name = "Media storage"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.conf import settings
        from django.core.signals import setting_changed

        from mediastore.backends import storage_for, storage_reset
        from veza.health import readiness_check_register

        # Tests and reconfiguration switch backends at run time.
        setting_changed.connect(storage_reset)
        readiness_check_register(
            "storage", lambda: storage_for(settings.TRACK_STORAGE_BACKEND).check()
        )
