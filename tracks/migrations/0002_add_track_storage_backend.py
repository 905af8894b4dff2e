from django.conf import settings
from django.db import migrations, models
from django.db.migrations.exceptions import IrreversibleError


def forwards(apps, schema_editor):
    """Existing rows are on local disk: the column default says so."""


def refuse_while_rows_on_s3(apps, schema_editor):
    # Runs first when this migration is reversed: dropping the column would
    # lose where those tracks' bytes are.
    Track = apps.get_model("tracks", "Track")
    on_s3 = (
        Track.objects.using(schema_editor.connection.alias)
        .filter(storage_backend="s3")
        .count()
    )
    if on_s3:
        raise IrreversibleError(
            f"Cannot reverse tracks.0002: {on_s3} track(s) are stored on S3 and "
            "the storage_backend column records that. Move them back first with "
            "`python manage.py migrate_storage --to local`, then migrate again."
        )


class Migration(migrations.Migration):
    dependencies = [
        ("tracks", "0001_initial_track"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="track",
            name="storage_backend",
            field=models.CharField(
                choices=[("local", "Local disk"), ("s3", "S3")],
                db_default="local",
                default="local",
                max_length=16,
            ),
        ),
        migrations.AddField(
            model_name="track",
            name="storage_key",
            field=models.CharField(blank=True, max_length=512, null=True),
        ),
        migrations.AddIndex(
            model_name="track",
            index=models.Index(
                condition=models.Q(("storage_backend", "s3")),
                fields=["storage_backend"],
                name="track_on_s3",
            ),
        ),
        migrations.AddConstraint(
            model_name="track",
            constraint=models.CheckConstraint(
                condition=models.Q(("storage_backend__in", ["local", "s3"])),
                name="track_storage_backend_valid",
            ),
        ),
        migrations.RunPython(forwards, refuse_while_rows_on_s3, elidable=False),
    ]
