from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("tracks", "0002_add_track_storage_backend"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="StorageMigrationRun",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True,
                        primary_key=True,
                        serialize=False,
                        verbose_name="ID",
                    ),
                ),
                (
                    "target",
                    models.CharField(
                        choices=[("local", "Local disk"), ("s3", "S3")], max_length=16
                    ),
                ),
                (
                    "started_by",
                    models.CharField(blank=True, default="", max_length=150),
                ),
                ("hostname", models.CharField(max_length=255)),
                ("pid", models.IntegerField()),
                ("options", models.JSONField(default=dict)),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("running", "Running"),
                            ("succeeded", "Succeeded"),
                            ("failed", "Failed"),
                            ("interrupted", "Interrupted"),
                        ],
                        default="running",
                        max_length=16,
                    ),
                ),
                ("selected", models.IntegerField(default=0)),
                ("selected_bytes", models.BigIntegerField(default=0)),
                ("moved", models.IntegerField(default=0)),
                ("already_there", models.IntegerField(default=0)),
                ("skipped", models.IntegerField(default=0)),
                ("failed", models.IntegerField(default=0)),
                ("bytes_moved", models.BigIntegerField(default=0)),
                ("failures", models.JSONField(blank=True, default=dict)),
                ("started_at", models.DateTimeField(auto_now_add=True)),
                ("heartbeat_at", models.DateTimeField(auto_now=True)),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
            ],
            options={
                "ordering": ["-started_at"],
            },
        ),
        migrations.AddField(
            model_name="track",
            name="migration_error",
            field=models.CharField(blank=True, default="", max_length=500),
        ),
        migrations.AddField(
            model_name="track",
            name="migration_lease_until",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="track",
            name="migration_runner",
            field=models.CharField(blank=True, default="", max_length=128),
        ),
        migrations.AddField(
            model_name="track",
            name="migration_state",
            field=models.CharField(
                blank=True,
                choices=[
                    ("claimed", "Claimed"),
                    ("copying", "Copying"),
                    ("verified", "Verified"),
                    ("flipped", "Flipped"),
                    ("failed", "Failed"),
                ],
                default="",
                max_length=16,
            ),
        ),
        migrations.AddField(
            model_name="track",
            name="migration_target",
            field=models.CharField(
                blank=True,
                choices=[("local", "Local disk"), ("s3", "S3")],
                default="",
                max_length=16,
            ),
        ),
        migrations.AddField(
            model_name="track",
            name="storage_verified_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddIndex(
            model_name="track",
            index=models.Index(
                condition=models.Q(
                    ("migration_state__in", ["", "flipped"]), _negated=True
                ),
                fields=["migration_state"],
                name="track_migration_active",
            ),
        ),
    ]
