"""Create the staff user from DJANGO_SUPERUSER_* if given, or say how."""

from __future__ import annotations

import os
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create a superuser from DJANGO_SUPERUSER_USERNAME/PASSWORD, once."

    def handle(self, *args: Any, **options: Any) -> None:
        # Django's own createsuperuser reads these variables; only their
        # presence is checked here.
        username = os.environ.get("DJANGO_SUPERUSER_USERNAME")
        if not username or not os.environ.get("DJANGO_SUPERUSER_PASSWORD"):
            if not get_user_model().objects.filter(is_staff=True).exists():
                self.stdout.write(
                    "No staff user yet. Create one with\n"
                    "  DJANGO_SUPERUSER_USERNAME=admin DJANGO_SUPERUSER_PASSWORD=... "
                    "DJANGO_SUPERUSER_EMAIL=admin@example.com make run\n"
                    "or: .venv/bin/python manage.py createsuperuser"
                )
            return
        if get_user_model().objects.filter(username=username).exists():
            self.stdout.write(f"Staff user {username!r} exists.")
            return
        call_command("createsuperuser", interactive=False, verbosity=0)
        self.stdout.write(self.style.SUCCESS(f"Created staff user {username!r}."))
