"""The cdn app: signed CDN URLs and cache-header helpers."""

from django.apps import AppConfig


class CdnConfig(AppConfig):
    name = "cdn"
    verbose_name = "CDN"

    def ready(self) -> None:
        from django.core.signals import setting_changed

        from cdn import checks  # noqa: F401  (registers the system checks)
        from cdn.services import cdn_reset

        # Tests and reconfiguration change CDN settings at run time.
        setting_changed.connect(cdn_reset)
