"""Test settings: the base settings, made faster and self-contained."""

from __future__ import annotations

import tempfile
from pathlib import Path

from veza.settings.base import *  # noqa: F403
from veza.settings.base import ALLOWED_HOSTS, DATABASES, TASKS

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
ALLOWED_HOSTS = [*ALLOWED_HOSTS, "testserver"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# Tasks run inline in tests; the database backend is exercised separately.
TASKS = {
    **TASKS,
    "default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"},
}
MEDIA_ROOT = Path(tempfile.mkdtemp(prefix="veza-test-media-"))
WHITENOISE_AUTOREFRESH = True

# A file, not memory, so subprocesses started by tests (migrate_storage
# runners) share the test database.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {
        "NAME": str(Path(tempfile.mkdtemp(prefix="veza-test-db-")) / "test.sqlite3")
    }

# Uploads are packaged only where a test asks (settings override): packaging
# every upload of the suite would double its time.
HLS_PACKAGE_ON_UPLOAD = False
