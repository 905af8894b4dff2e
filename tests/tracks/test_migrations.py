"""The storage migration (tracks.0002) reverses only when no row is on S3."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection
from django.db.migrations.exceptions import IrreversibleError

from tracks.models import Track


def track_columns() -> set[str]:
    with connection.cursor() as cursor:
        return {
            c.name
            for c in connection.introspection.get_table_description(
                cursor, "tracks_track"
            )
        }


def make_track(owner, backend: str) -> Track:
    return Track.objects.create(
        owner=owner,
        title="t",
        original_filename="t.wav",
        mime_type="audio/wav",
        size_bytes=1,
        sha256="0" * 64,
        duration_seconds=1.0,
        storage_backend=backend,
        storage_key="tracks/x/y.wav",
    )


@pytest.mark.django_db(transaction=True)
def test_reverse_refuses_while_rows_are_on_s3_then_succeeds():
    owner = get_user_model().objects.create_user("mig")
    make_track(owner, "local")
    on_s3 = make_track(owner, "s3")
    try:
        with pytest.raises(IrreversibleError, match=r"1 track\(s\) are stored on S3"):
            call_command("migrate", "tracks", "0001", verbosity=0)
        assert {"storage_backend", "storage_key"} <= track_columns()
        # all_objects: the later migrations, the status column's among them,
        # were unapplied before 0002 refused.
        assert Track.all_objects.filter(storage_backend="s3").count() == 1

        Track.all_objects.filter(pk=on_s3.pk).update(storage_backend="local")
        call_command("migrate", "tracks", "0001", verbosity=0)
        assert not {"storage_backend", "storage_key"} & track_columns()
    finally:
        # Every app forward: apps built on tracks (streaming) were unapplied
        # with it.
        call_command("migrate", verbosity=0)
    assert {"storage_backend", "storage_key"} <= track_columns()
    # Rows that existed before the column are local by default.
    assert set(Track.objects.values_list("storage_backend", flat=True)) == {"local"}


@pytest.mark.django_db
def test_the_database_refuses_an_unknown_backend(user):
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        Track.objects.bulk_create(
            [
                Track(
                    owner=user,
                    title="t",
                    original_filename="t",
                    mime_type="audio/wav",
                    size_bytes=1,
                    sha256="0" * 64,
                    duration_seconds=1.0,
                    storage_backend="S3",
                )
            ]
        )
