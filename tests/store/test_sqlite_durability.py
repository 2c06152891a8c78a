"""On SQLite, an answered decision survives a power loss in the configuration that ships:
every connection tether writes with commits with ``synchronous=FULL`` (WAL fsynced at
each commit) unless the operator chose NORMAL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from tests.support.databases import sqlite_url
from tests.support.server import RunningTether, start_tether
from tether.config import Settings
from tether.errors import ConfigError

FULL, NORMAL = 2, 1


def _synchronous_of(tether: RunningTether) -> tuple[int, int]:
    """``PRAGMA synchronous`` on the ORM's connections and on the hot-path writer's."""

    async def read() -> tuple[int, int]:
        async with tether.runtime.db.read() as conn:
            orm = (await conn.execute(text("PRAGMA synchronous"))).scalar_one()

        def writer_pragma(connection: Any) -> int:
            return int(connection.execute("PRAGMA synchronous").fetchone()[0])

        writer = tether.runtime.sqlite_writer
        assert writer is not None
        hot = await writer.transaction(writer_pragma)
        return int(orm), hot

    result: tuple[int, int] = tether.run(read())
    return result


def test_the_default_configuration_fsyncs_every_commit(tether: RunningTether) -> None:
    assert Settings.from_env({}).sqlite_synchronous == "FULL"
    assert _synchronous_of(tether) == (FULL, FULL)


def test_normal_is_an_explicit_choice(tmp_path: Path) -> None:
    assert Settings.from_env({"TETHER_SQLITE_SYNCHRONOUS": "normal"}).sqlite_synchronous == "NORMAL"
    with pytest.raises(ConfigError, match="TETHER_SQLITE_SYNCHRONOUS"):
        Settings.from_env({"TETHER_SQLITE_SYNCHRONOUS": "OFF"})
    server = start_tether(tmp_path / "data", sqlite_url(str(tmp_path)), sqlite_synchronous="NORMAL")
    try:
        assert _synchronous_of(server) == (NORMAL, NORMAL)
    finally:
        server.stop()
