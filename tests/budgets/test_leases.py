"""Budget leases through the real front doors: calls served from a per-process slice of a
budget still stop at the limit, on one process and on two, and what they spent reaches
the database."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from tests.budgets.test_budgets import body, budget, call, concurrent_burst, listed
from tests.sessions.test_bounded_memory import in_memory
from tests.support.databases import sqlite_url
from tests.support.fake_upstream import RunningFake
from tests.support.server import RunningTether, start_tether
from tether.fakes.anthropic import FakeReply

LEASE_PERCENT = 2.0
LEASED = pytest.mark.parametrize(
    "gateway", [{"budget_lease_percent": LEASE_PERCENT}], indirect=True, ids=["leased"]
)


def settled(tether: RunningTether, budget_id: str, seconds: float = 8) -> dict:
    """The budget once every lease was written back and given back (idle leases go back
    after a few seconds)."""
    deadline = time.monotonic() + seconds
    while (state := listed(tether, budget_id))["reserved_usd"] != 0:
        assert time.monotonic() < deadline, f"leases still held: {state}"
        time.sleep(0.1)
    return state


@LEASED
def test_a_leased_budget_caps_a_retry_loop_at_its_last_cents(
    gateway: RunningTether, upstream: RunningFake
) -> None:
    key = gateway.create_agent("claude-deploy-01", "p")
    gateway.set_guards("p", repeat_limit=None)
    daily = budget(gateway, project="p", period="daily", limit_usd=2)
    upstream.fake.default = FakeReply(text="same failing output", output_tokens=5800)

    statuses = [call(gateway, key, "loop").status_code for _ in range(70)]

    state = settled(gateway, daily["id"])
    per_call = (
        len('[{"role": "user", "content": "run the failing command again"}]') // 4 * 2 + 5800 * 10
    ) / 1_000_000
    assert set(statuses[statuses.index(402) :]) == {402}, "refused once, refused after"
    assert state["spent_usd"] <= 2.0
    assert state["spent_usd"] > 2.0 - per_call, "the lease's tail was usable, not refused early"
    assert 25 <= statuses.count(200) <= 45, statuses.count(200)


def test_what_a_live_lease_spent_is_written_back_within_seconds(
    tmp_path: Path, database_url: str, upstream: RunningFake
) -> None:
    """Calls keep the lease in use, so only the write-back (not giving it back) can show
    the spend; on both stores."""
    leased = start_tether(
        tmp_path / "data",
        database_url,
        anthropic_base_url=upstream.url,
        budget_lease_percent=LEASE_PERCENT,
    )
    try:
        leased.create_project("p", upstream.fake.api_key)
        _spend_is_written_back(leased, upstream)
    finally:
        leased.stop()


def _spend_is_written_back(leased: RunningTether, upstream: RunningFake) -> None:
    key = leased.create_agent("a", "p")
    daily = budget(leased, project="p", period="daily", limit_usd=10)
    upstream.fake.default = FakeReply(output_tokens=100)
    deadline = time.monotonic() + 5
    while (written := listed(leased, daily["id"]))["spent_usd"] == 0:
        assert time.monotonic() < deadline, "spend not written back while the lease lives"
        assert call(leased, key, "s", max_tokens=200).status_code == 200
        time.sleep(0.2)
    assert written["reserved_usd"] > 0, "the lease was still held when its spend arrived"
    state = settled(leased, daily["id"])
    session = leased.call("GET", "/sessions/s").json()
    assert session["cost_usd"] > 0
    assert state["spent_usd"] == pytest.approx(session["cost_usd"], abs=1e-6)


@LEASED
def test_a_lowered_limit_applies_to_the_next_call_despite_a_lease(
    gateway: RunningTether, upstream: RunningFake
) -> None:
    key = gateway.create_agent("a", "p")
    budget(gateway, project="p", period="daily", limit_usd=10)
    upstream.fake.default = FakeReply(output_tokens=100)
    assert call(gateway, key, "s", max_tokens=200).status_code == 200
    budget(gateway, project="p", period="daily", limit_usd=0.000001)
    deadline = time.monotonic() + 3
    while (refused := call(gateway, key, "s", max_tokens=200)).status_code == 200:
        assert time.monotonic() < deadline, "the old lease kept serving past the new limit"
        time.sleep(0.05)
    assert refused.status_code == 402


def test_a_stopped_tether_gives_its_leases_back(tmp_path: Path, upstream: RunningFake) -> None:
    url = sqlite_url(str(tmp_path))
    first = start_tether(
        tmp_path / "data", url, anthropic_base_url=upstream.url, budget_lease_percent=50
    )
    first.create_project("p", upstream.fake.api_key)
    key = first.create_agent("a", "p")
    daily = budget(first, project="p", period="daily", limit_usd=1)
    assert call(first, key, "s", max_tokens=200).status_code == 200
    leased = listed(first, daily["id"])
    # The lease writes its spend back every second: reserved + spent is the lease.
    assert leased["reserved_usd"] + leased["spent_usd"] >= 0.5, "half the budget is leased"
    first.stop()
    again = start_tether(tmp_path / "data", url, anthropic_base_url=upstream.url)
    try:
        state = listed(again, daily["id"])
        assert state["reserved_usd"] == 0
        assert 0 < state["spent_usd"] < 0.01
    finally:
        again.stop()


@pytest.mark.parametrize(
    "replicas", [{"budget_lease_percent": LEASE_PERCENT}], indirect=True, ids=["leased"]
)
def test_leases_on_two_replicas_never_overspend(
    replicas: tuple[RunningTether, RunningTether], upstream: RunningFake
) -> None:
    first, _ = replicas
    first.create_project("p", upstream.fake.api_key)
    key = first.create_agent("a", "p")
    daily = budget(first, project="p", period="daily", limit_usd=0.6)
    upstream.fake.default = FakeReply(
        output_tokens=5900, chunks=30, chunk_delay=0.001, fill_text=True
    )

    results = concurrent_burst(replicas, key)
    cut = [r for r in results if r == (200, "cut")]
    refused = [r for r in results if r[0] != 200]
    assert refused and {r for r in refused} == {(402, "budget_exceeded")}
    state = settled(first, daily["id"])
    one_increment_usd = 2048 * 10 / 1_000_000
    assert state["spent_usd"] <= 0.6 + len(cut) * one_increment_usd, (state, len(cut))
    assert state["spent_usd"] > 0.3, "both replicas' leases were spent, not stranded"


@LEASED
def test_new_sessions_each_lease_their_own_limit_and_stop_at_it(
    gateway: RunningTether, upstream: RunningFake
) -> None:
    """A conversation without a session header, then six more at once, eight calls each: each
    conversation's session is tether's own, so its first lease is made without waiting
    (no one else can charge its period yet), and the calls racing it take from it or grow
    it (answers capped to what is left, or refused); each session spends up to its limit
    and no further."""
    key = gateway.create_agent("a", "p")
    gateway.set_guards("p", repeat_limit=None)
    budget(gateway, project="p", period="session", limit_usd=0.25)
    upstream.fake.default = FakeReply(output_tokens=5000)

    async def burst() -> list[tuple[int, int, str]]:
        async with httpx.AsyncClient(timeout=60) as client:

            async def one(conversation: int) -> tuple[int, int, str]:
                request = body(6000)
                request["messages"][0]["content"] += f" (conversation {conversation})"
                response = await client.post(
                    f"{gateway.url}/v1/messages",
                    json=request,
                    headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
                )
                return conversation, response.status_code, response.headers["tether-session-id"]

            return await asyncio.gather(*[one(n % 6) for n in range(48)])

    alone = httpx.post(
        f"{gateway.url}/v1/messages",
        json=body(6000),
        headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
        timeout=30,
    )
    assert alone.status_code == 200, alone.text
    results = asyncio.run(burst())
    for n in range(6):
        statuses = [status for conversation, status, _ in results if conversation == n]
        sessions = {session for conversation, _, session in results if conversation == n}
        assert set(statuses) <= {200, 402} and statuses.count(200) >= 3, statuses
        assert len(sessions) == 1, sessions
        cost = gateway.call("GET", f"/sessions/{sessions.pop()}").json()["cost_usd"]
        assert 0.15 <= cost <= 0.25, (n, cost, statuses)


@LEASED
def test_leases_of_sessions_gone_idle_leave_memory(gateway: RunningTether) -> None:
    """A client that names no session starts one each conversation, each with a lease on
    its own session budget: a fleet's day of them must not pile up. Once idle, each lease
    goes back to the database and out of memory (``tether_in_memory_entries``)."""
    key = gateway.create_agent("a", "p")
    gateway.set_guards("p", repeat_limit=None)
    budget(gateway, project="p", period="session", limit_usd=5)
    conversations = 12
    for n in range(conversations):
        request = body(64)
        request["messages"][0]["content"] += f" (conversation {n})"
        answer = httpx.post(
            f"{gateway.url}/v1/messages",
            json=request,
            headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
    held = in_memory(gateway)
    # On a slow machine the first conversations' leases may be idle (3 s) and gone already.
    assert held["budget_leases"] + held["budget_leases_returning"] >= 1, held
    deadline = time.monotonic() + 15
    while (held := in_memory(gateway))["budget_leases"] + held["budget_leases_returning"]:
        assert time.monotonic() < deadline, f"leases still in memory: {held}"
        time.sleep(0.2)
    assert held["budget_calls_unsettled"] == 0, held
