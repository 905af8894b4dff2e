"""Fixtures of the webrtc tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from channels.db import database_sync_to_async
from django.db import connections


@pytest_asyncio.fixture(autouse=True)
async def _close_worker_connections() -> AsyncIterator[None]:
    """Close the database connection of the consumers' worker thread.

    `database_sync_to_async` runs the ORM in one shared thread whose
    connection would otherwise stay open and keep PostgreSQL from dropping
    the test database at the end of the run.
    """
    yield
    await database_sync_to_async(connections.close_all)()
