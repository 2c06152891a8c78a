"""A budget is a hard limit under any interleaving of concurrent calls: 100 calls through
the ``anthropic`` SDK, half streaming, answers arriving in pieces of about 1,000 tokens,
never record more than the limit, and ``reserved`` never goes below zero."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import anthropic
import pytest

from tests.budgets.test_budgets import budget, listed
from tests.support.fake_upstream import RunningFake
from tests.support.server import RunningTether
from tether.fakes.anthropic import FakeReply

LIMIT = 1.0
MODEL = "claude-sonnet-5"


def _one(client: anthropic.Anthropic, n: int) -> str:
    kwargs = {
        "model": MODEL,
        "max_tokens": 8000,
        "messages": [{"role": "user", "content": f"write it all out, take {n}"}],
    }
    try:
        if n % 2:
            with client.messages.stream(**kwargs) as stream:  # type: ignore[arg-type]
                for _ in stream.text_stream:
                    pass
            return "ok"
        client.messages.create(**kwargs)  # type: ignore[arg-type]
        return "ok"
    except anthropic.APIStatusError as exc:
        return f"{exc.status_code}"
    except anthropic.APIError:
        return "cut"


def _watch_reserved(tether: RunningTether, budget_id: str, stop: threading.Event) -> list[float]:
    seen: list[float] = []
    while not stop.is_set():
        seen.append(listed(tether, budget_id)["reserved_usd"])
        time.sleep(0.02)
    return seen


def burst(
    tether: RunningTether,
    upstream: RunningFake,
    sdk: Callable[..., anthropic.Anthropic],
    reply: FakeReply,
) -> tuple[dict, list[str], list[float]]:
    key = tether.create_agent("a", "p")
    tether.set_guards("p", repeat_limit=None)
    daily = budget(tether, project="p", period="daily", limit_usd=LIMIT)
    upstream.fake.default = reply
    client = sdk(tether, key)
    stop = threading.Event()
    with ThreadPoolExecutor(max_workers=101) as pool:
        watcher = pool.submit(_watch_reserved, tether, daily["id"], stop)
        results = list(pool.map(lambda n: _one(client, n), range(100)))
        stop.set()
        reserved_seen = watcher.result()
    deadline = time.monotonic() + 10
    while (state := listed(tether, daily["id"]))["reserved_usd"] != 0:
        assert time.monotonic() < deadline, state
        time.sleep(0.1)
    return state, results, reserved_seen


@pytest.mark.parametrize(
    "gateway", [{}, {"budget_lease_percent": 0}], indirect=True, ids=["leased", "per-call"]
)
@pytest.mark.parametrize("cache_1h", [False, True], ids=["plain", "1h-cache-writes"])
def test_a_one_dollar_budget_spends_at_most_one_dollar(
    gateway: RunningTether,
    upstream: RunningFake,
    sdk: Callable[..., anthropic.Anthropic],
    cache_1h: bool,
) -> None:
    reply = FakeReply(
        output_tokens=6000,
        chunks=6,
        fill_text=True,
        chunk_delay=0.01,
        cache_creation_input_tokens=2000 if cache_1h else 0,
        cache_creation_1h_tokens=2000 if cache_1h else 0,
    )
    state, results, reserved_seen = burst(gateway, upstream, sdk, reply)
    assert results.count("ok") >= 5, results
    assert {r for r in results if r not in ("ok", "cut")} <= {"402", "200"}, results
    assert min(reserved_seen) >= 0
    assert state["spent_usd"] <= LIMIT
