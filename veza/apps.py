"""The project app: configuration checks and project-wide commands."""

from __future__ import annotations

from django.apps import AppConfig
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from veza import config


class VezaConfig(AppConfig):
    name = "veza"
    verbose_name = "Veza"

    def ready(self) -> None:
        # Imported for their registrations: system checks, signal receivers.
        from django.contrib import admin

        from veza import authentication, checks  # noqa: F401

        # The admin's app list beside every page takes 300 px: on a laptop
        # (1280 px) the track and package lists no longer fit beside it and
        # its filters. The index and the breadcrumbs lead everywhere it did.
        admin.site.enable_nav_sidebar = False

        fatal = [
            p
            for p in settings.CONFIG_PROBLEMS
            if config.is_fatal(p, veza_env=settings.VEZA_ENV)
        ]
        if fatal:
            # Every process (daphne, gunicorn, runserver, management
            # commands) sets the apps up, so this stops all of them at start.
            lines = [f"  {p.id} {p.text()} Fix: {p.fix}" for p in fatal]
            raise ImproperlyConfigured(
                "Veza cannot start with this configuration:\n" + "\n".join(lines)
            )
