from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anthropic
import pytest

from tests.support.databases import REDIS_URL, postgres_database, seed_sqlite, sqlite_url
from tests.support.fake_upstream import RunningFake, start_fake
from tests.support.replicas import start_here_and_there
from tests.support.server import RunningTether, start_tether
from tests.support.tcp_proxy import CuttableProxy


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Every test that takes this runs on both backends, on a database at the newest
    schema (a copy of one migrated by tether's migrations)."""
    if request.param == "sqlite":
        url = sqlite_url(str(tmp_path))
        seed_sqlite(url)
        yield url
    else:
        with postgres_database(migrated=True) as url:
            yield url


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL database at the newest schema, for what only PostgreSQL does."""
    with postgres_database(migrated=True) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """On both backends, a database nothing has migrated (for tests of the migrations)."""
    if request.param == "sqlite":
        yield sqlite_url(str(tmp_path))
    else:
        with postgres_database() as url:
            yield url


@pytest.fixture
def tether(tmp_path: Path) -> Iterator[RunningTether]:
    """A tether on SQLite (the embedded default)."""
    server = start_tether(tmp_path / "data", sqlite_url(str(tmp_path)))
    yield server
    server.stop()


@pytest.fixture
def tether_any(tmp_path: Path, database_url: str) -> Iterator[RunningTether]:
    """A tether on each backend in turn."""
    server = start_tether(tmp_path / "data", database_url)
    yield server
    server.stop()


@pytest.fixture
def upstream() -> Iterator[RunningFake]:
    """The fake Anthropic API."""
    running = start_fake()
    yield running
    running.stop()


@pytest.fixture
def here_and_there(
    tmp_path: Path, upstream: RunningFake
) -> Iterator[tuple[RunningTether, RunningTether, CuttableProxy]]:
    """Two replicas on one PostgreSQL, ``here`` behind a forwarder that can hold a reply."""
    with start_here_and_there(tmp_path, upstream) as running:
        yield running


def _overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings a test gives a server fixture through indirect parametrization."""
    return dict(getattr(request, "param", None) or {})


@pytest.fixture
def gateway(
    request: pytest.FixtureRequest, tmp_path: Path, upstream: RunningFake
) -> Iterator[RunningTether]:
    """A tether on SQLite whose Anthropic upstream is the fake, with project ``p``
    holding the fake's key (settings overridden by ``indirect`` parameters)."""
    server = start_tether(
        tmp_path / "data",
        sqlite_url(str(tmp_path)),
        anthropic_base_url=upstream.url,
        **_overrides(request),
    )
    server.create_project("p", upstream.fake.api_key)
    yield server
    server.stop()


@contextmanager
def _two_tethers(
    tmp_path: Path, upstream: RunningFake, **overrides: Any
) -> Iterator[tuple[RunningTether, RunningTether]]:
    """Two tethers on one fresh PostgreSQL database, sharing the master key and the admin
    token, both forwarding to the fake upstream."""
    shared = {
        "anthropic_base_url": upstream.url,
        "master_key": base64.b64encode(os.urandom(32)).decode(),
        **overrides,
    }
    with postgres_database(migrated=True) as url:
        first = start_tether(tmp_path / "a", url, **shared)
        try:
            second = start_tether(
                tmp_path / "b", url, bootstrap_admin_token=first.admin_token, **shared
            )
            try:
                yield first, second
            finally:
                second.stop()
        finally:
            first.stop()


@pytest.fixture
def replicas(
    request: pytest.FixtureRequest, tmp_path: Path, upstream: RunningFake
) -> Iterator[tuple[RunningTether, RunningTether]]:
    """Two replicas (settings overridden as for ``gateway``)."""
    with _two_tethers(tmp_path, upstream, **_overrides(request)) as pair:
        yield pair


@pytest.fixture
def redis_fleet(
    tmp_path: Path, upstream: RunningFake
) -> Iterator[tuple[RunningTether, RunningTether]]:
    """Two replicas sharing one Redis under a key prefix of their own (so tests running in
    parallel never meet), with project ``p`` holding the fake's key."""
    redis = {"redis_url": REDIS_URL, "redis_prefix": f"test-{uuid.uuid4().hex}:"}
    with _two_tethers(tmp_path, upstream, **redis) as (first, second):
        first.create_project("p", upstream.fake.api_key)
        yield first, second


@pytest.fixture
def redis_proxy() -> Iterator[CuttableProxy]:
    """The tests' Redis behind a forwarder that can lose or hold up a reply."""
    redis = urlsplit(REDIS_URL)
    proxy = CuttableProxy(redis.hostname or "127.0.0.1", redis.port or 6379).start()
    yield proxy
    proxy.close()


@pytest.fixture
def tether_behind_redis_proxy(
    tmp_path: Path, upstream: RunningFake, redis_proxy: CuttableProxy
) -> Iterator[RunningTether]:
    """A tether on SQLite keeping its fleet state in Redis through ``redis_proxy``, with
    project ``p`` holding the fake's key."""
    tether = start_tether(
        tmp_path / "data",
        sqlite_url(str(tmp_path)),
        anthropic_base_url=upstream.url,
        redis_url=f"redis://127.0.0.1:{redis_proxy.port}{urlsplit(REDIS_URL).path}",
        redis_prefix=f"test-{uuid.uuid4().hex}:",
    )
    tether.create_project("p", upstream.fake.api_key)
    yield tether
    tether.stop()


@pytest.fixture
def sdk() -> Iterator[Callable[..., anthropic.Anthropic]]:
    """Makes real ``anthropic`` SDK clients pointed at a tether (``sdk(tether, key,
    session=…, retries=…)``) and closes them after the test, so no socket outlives it."""
    opened: list[anthropic.Anthropic] = []

    def make(
        tether: RunningTether, key: str, session: str | None = None, retries: int = 0
    ) -> anthropic.Anthropic:
        headers = {"X-Claude-Code-Session-Id": session} if session else {}
        client = anthropic.Anthropic(
            api_key=key, base_url=tether.url, max_retries=retries, default_headers=headers
        )
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.close()
