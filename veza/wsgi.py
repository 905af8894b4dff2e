"""WSGI entry point: the production HTTP server (gunicorn) loads this."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "veza.settings.base")

application = get_wsgi_application()
