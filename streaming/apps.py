"""The streaming app: HLS packaging and serving."""

from django.apps import AppConfig


class StreamingConfig(AppConfig):
    name = "streaming"
    verbose_name = "Streaming"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from streaming import signals  # noqa: F401  (packaging and cache receivers)
        from streaming.attachments import hls_packages_register

        hls_packages_register()  # migrate_storage moves packages with tracks
