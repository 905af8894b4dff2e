"""The mediastore app: storage backends, the transfer engine and tallies."""

from typing import Any

from django.apps import AppConfig


class MediastoreConfig(AppConfig):
    name = "mediastore"
    verbose_name = "Media storage"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.core.signals import setting_changed

        from veza.health import readiness_check_register

        # Tests and reconfiguration switch backends at run time.
        setting_changed.connect(_storage_reset)
        readiness_check_register("storage", _storage_check)


# The backends import boto3 (a fifth of a second): only when first used, so
# commands that never touch storage (a no-op `migrate_storage`) start faster.
def _storage_reset(**kwargs: Any) -> None:
    from mediastore.backends import storage_reset

    storage_reset(**kwargs)


def _storage_check() -> None:
    from django.conf import settings

    from mediastore.backends import storage_for

    storage_for(settings.TRACK_STORAGE_BACKEND).check()
