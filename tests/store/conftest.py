"""A migrated database on each backend for the store's tests (``database_url``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tether.store.database import Database
from tether.store.migrate import upgrade


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    await upgrade(database)
    yield database
    await database.dispose()
