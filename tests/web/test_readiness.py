"""``/readyz`` checks the store, the audit writer and the change feed; ``/healthz``
answers whatever they do."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.databases import PG_HOST, PG_PORT, postgres_database
from tests.support.server import RunningTether, start_tether
from tests.support.tcp_proxy import CuttableProxy


@pytest.fixture
def proxied_tether(tmp_path: Path) -> Iterator[tuple[RunningTether, CuttableProxy]]:
    proxy = CuttableProxy(PG_HOST, PG_PORT).start()
    with postgres_database() as url:
        server = start_tether(tmp_path / "data", url.replace(f":{PG_PORT}/", f":{proxy.port}/"))
        try:
            yield server, proxy
        finally:
            proxy.restore()
            server.stop()
            proxy.close()


def test_ready_when_everything_answers(tether_any: RunningTether) -> None:
    ready = httpx.get(f"{tether_any.url}/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"store": "ok", "audit": "ok", "change_feed": "ok"}


def test_not_ready_while_the_database_is_unreachable(
    proxied_tether: tuple[RunningTether, CuttableProxy],
) -> None:
    tether, proxy = proxied_tether
    assert httpx.get(f"{tether.url}/readyz").status_code == 200

    proxy.cut()
    answer = httpx.get(f"{tether.url}/readyz", timeout=30)
    assert answer.status_code == 503, answer.text
    body = answer.json()
    assert body["status"] == "not_ready"
    assert body["checks"]["store"] != "ok"
    assert "database" in body["checks"]["store"] or "no answer" in body["checks"]["store"]
    assert httpx.get(f"{tether.url}/healthz").status_code == 200

    proxy.restore()
    deadline = time.monotonic() + 30
    while httpx.get(f"{tether.url}/readyz", timeout=30).status_code != 200:
        assert time.monotonic() < deadline, "never ready again after the database came back"
        time.sleep(0.2)
