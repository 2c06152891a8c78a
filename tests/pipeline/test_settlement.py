"""Settlement is durable work: a call that went ahead is charged and its completion
recorded even when the database was down when it ended."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.databases import PG_HOST, PG_PORT, postgres_database
from tests.support.fake_upstream import RunningFake
from tests.support.server import RunningTether, start_tether
from tests.support.tcp_proxy import CuttableProxy
from tether.fakes.anthropic import FakeReply

CALLS = 6


@pytest.fixture
def proxied(tmp_path: Path, upstream: RunningFake) -> Iterator[tuple[RunningTether, CuttableProxy]]:
    proxy = CuttableProxy(PG_HOST, PG_PORT).start()
    with postgres_database() as url:
        server = start_tether(
            tmp_path / "data",
            url.replace(f":{PG_PORT}/", f":{proxy.port}/"),
            anthropic_base_url=upstream.url,
        )
        try:
            yield server, proxy
        finally:
            proxy.restore()
            server.stop()
            proxy.close()


def test_calls_that_end_while_the_database_is_down_are_charged_and_recorded_after(
    proxied: tuple[RunningTether, CuttableProxy], upstream: RunningFake
) -> None:
    tether, proxy = proxied
    tether.create_project("p", upstream.fake.api_key)
    key = tether.create_agent("a", "p")
    daily = tether.call("PUT", "/budgets", json={"project": "p", "period": "daily", "limit_usd": 5})
    upstream.fake.default = FakeReply(output_tokens=1000, chunks=20, chunk_delay=0.1)
    statuses: list[int] = []

    def one(n: int) -> None:
        response = httpx.post(
            f"{tether.url}/v1/messages",
            json={
                "model": "claude-sonnet-5",
                "max_tokens": 2000,
                "stream": n % 2 == 0,
                "messages": [{"role": "user", "content": f"task {n}"}],
            },
            headers={
                "x-api-key": key,
                "anthropic-version": "2023-06-01",
                "X-Tether-Session-Id": f"s{n}",
            },
            timeout=60,
        )
        statuses.append(response.status_code)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(CALLS)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while len(upstream.fake.received) < CALLS:
        assert time.monotonic() < deadline, "the calls never reached upstream"
        time.sleep(0.02)
    proxy.cut()
    for thread in threads:
        thread.join(30)
    assert statuses == [200] * CALLS
    time.sleep(1.5)
    proxy.restore()

    deadline = time.monotonic() + 30
    while True:
        done = tether.call(
            "GET", "/audit", params={"action": "model:messages:completed", "limit": 100}
        )
        budget = next(
            b for b in tether.call("GET", "/budgets").json() if b["id"] == daily.json()["id"]
        )
        if done.status_code == 200 and len(done.json()) == CALLS and budget["reserved_usd"] == 0:
            break
        assert time.monotonic() < deadline, (done.text, budget)
        time.sleep(0.2)
    costs = [e["attributes"]["cost_usd"] for e in done.json()]
    assert all(c and c > 0 for c in costs)
    assert budget["spent_usd"] == pytest.approx(sum(costs), abs=1e-6)
