"""PostgreSQL indexes for the admin's track search: title pieces and SHA-256 prefixes."""

from django.db import migrations

# Django's icontains is UPPER(title::text) LIKE UPPER('%term%') and its
# startswith is sha256::text LIKE 'term%': the indexes match those shapes.
CREATE = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX IF NOT EXISTS track_title_trgm ON tracks_track "
    "USING gin (UPPER(title::text) gin_trgm_ops)",
    "CREATE INDEX IF NOT EXISTS track_sha256_prefix ON tracks_track "
    "(sha256 text_pattern_ops)",
]
DROP = [
    "DROP INDEX IF EXISTS track_sha256_prefix",
    "DROP INDEX IF EXISTS track_title_trgm",
]


def _run(statements: list[str]):
    # PostgreSQL only: SQLite has neither trigram indexes nor operator
    # classes, and its searches are small.
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            for statement in statements:
                schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [("tracks", "0006_track_created_index")]

    operations = [migrations.RunPython(_run(CREATE), _run(DROP))]
