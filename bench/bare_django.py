"""A bare Django project in one file: the baseline of bench_stream_url.py.

Settings, URLs and a JSON view; no apps, no middleware, no database. Served
with `gunicorn -c infra/gunicorn.conf.py --chdir bench bare_django:application`.
"""

from __future__ import annotations

import os

from django.http import HttpRequest, JsonResponse
from django.urls import path

DEBUG = False
SECRET_KEY = "bare-django-benchmark-only"  # noqa: S105  (never serves anything real)
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = __name__
INSTALLED_APPS: list[str] = []
MIDDLEWARE: list[str] = []
DATABASES: dict[str, object] = {}
USE_TZ = True


def hello(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        {"url": "https://example.invalid/x", "expires_at": 0, "source": "bare"}
    )


urlpatterns = [path("hello", hello)]

os.environ["DJANGO_SETTINGS_MODULE"] = __name__

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
