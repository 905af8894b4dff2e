"""Helpers shared by the track tests."""

from __future__ import annotations

from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection

LIST_URL = "/api/v1/tracks/"


def upload(
    client,
    content: bytes,
    name: str = "tone.wav",
    content_type: str = "audio/wav",
    **fields,
):
    data = {
        "file": SimpleUploadedFile(name, content, content_type=content_type),
        **fields,
    }
    return client.post(LIST_URL, data, format="multipart")


def create_track(client, content: bytes, **fields) -> dict:
    response = upload(client, content, **fields)
    assert response.status_code == 201, response.content
    return response.json()


def assert_error(response, status: int, code: str) -> None:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    assert isinstance(body["error"]["details"], dict)


def plans_of(queries: list[dict]) -> list[tuple[str, str]]:
    """(SQL, plan) of every SELECT on tracks, planned as if the table were
    large: with sequential scans off, a plan that still scans the table
    has no index to serve it."""
    found = []
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET enable_seqscan = off")
        for query in queries:
            sql = query["sql"]
            if not sql.startswith("SELECT") or "tracks_track" not in sql:
                continue
            explain = (
                "EXPLAIN "
                if connection.vendor == "postgresql"
                else "EXPLAIN QUERY PLAN "
            )
            cursor.execute(explain + sql.replace(" FOR UPDATE SKIP LOCKED", ""))
            found.append((sql, "\n".join(str(r) for r in cursor.fetchall())))
        if connection.vendor == "postgresql":
            cursor.execute("RESET enable_seqscan")
    return found


def assert_no_table_scan(queries: list[dict]) -> None:
    for sql, plan in plans_of(queries):
        if connection.vendor == "postgresql":
            assert "Seq Scan on tracks_track" not in plan, (sql, plan)
        else:
            # "SCAN tracks_track USING INDEX …" walks an index: fine.
            scans = [
                line
                for line in plan.splitlines()
                if "SCAN tracks_track" in line and "INDEX" not in line
            ]
            assert not scans, (sql, plan)
