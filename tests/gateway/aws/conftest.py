from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.aws import running_moto
from tests.support.databases import sqlite_url
from tests.support.server import RunningTether, start_tether


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    """moto in server mode, playing AWS for every test of the module."""
    with running_moto() as url:
        yield url


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningTether]:
    """One tether (SQLite) for the module; each test uses its own project and agent."""
    tmp: Path = tmp_path_factory.mktemp("broker")
    server = start_tether(tmp / "data", sqlite_url(str(tmp)))
    yield server
    server.stop()
