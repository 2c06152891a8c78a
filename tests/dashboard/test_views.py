"""Dashboard pages over plain HTTP (logged in with the admin token): what each shows."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.server import RunningTether
from tether.clock import now_ms
from tether.store.budget_ledger import open_ledger
from tether.store.budgets import Hold


@pytest.fixture
def operator(tether: RunningTether) -> Iterator[httpx.Client]:
    """A client logged in to the dashboard with the admin token (the cookie it got)."""
    with httpx.Client(base_url=f"{tether.url}/ui", timeout=10) as client:
        answer = client.post("/login", data={"token": tether.admin_token})
        assert answer.status_code == 303, answer.text
        yield client


def authorize(
    tether: RunningTether, key: str, action: str, resource: str, client: httpx.Client | None = None
) -> str:
    answer = (client or httpx).post(
        f"{tether.url}/v1/authorize",
        headers={"Authorization": f"Bearer {key}"},
        json={"session_id": "views", "action": action, "resource": resource},
        timeout=10,
    )
    assert answer.status_code in (200, 403), answer.text
    decision: str = answer.json()["decision"]
    return decision


def test_agent_page_shows_when_each_key_was_last_used(
    tether: RunningTether, operator: httpx.Client
) -> None:
    tether.create_project("p")
    key = tether.create_agent("worker", "p")
    tether.create_agent("idle", "p")
    authorize(tether, key, "s3:GetObject", "arn:aws:s3:::b/k")

    deadline = time.monotonic() + 5
    page = operator.get("/agents/worker").text
    while 'class="last-used">never' in page and time.monotonic() < deadline:
        time.sleep(0.1)
        page = operator.get("/agents/worker").text
    assert re.search(r'class="last-used">\d+s ago<', page), page
    assert key not in page
    assert 'class="last-used">never<' in operator.get("/agents/idle").text


def test_overview_draws_decisions_by_result_over_time(
    tether: RunningTether, operator: httpx.Client
) -> None:
    tether.create_project("open")
    tether.create_project("closed", policy=None)  # no policy: everything is denied
    allowed, denied = tether.create_agent("a", "open"), tether.create_agent("b", "closed")
    decisions = [
        authorize(tether, allowed, "s3:GetObject", f"arn:aws:s3:::b/{i}") for i in range(3)
    ]
    decisions += [authorize(tether, denied, "s3:GetObject", "arn:aws:s3:::b/k") for _ in range(2)]
    assert decisions == ["allow"] * 3 + ["deny"] * 2

    page = operator.get("/overview")
    assert page.status_code == 200
    chart = page.text.split('aria-label="decisions by result over time"', 1)[1].split("</svg>")[0]
    drawn: dict[str, float] = {}
    for result, value in re.findall(r"<title>\d\d:\d\d (\w+): ([\d,.]+)</title>", chart):
        drawn[result] = drawn.get(result, 0.0) + float(value.replace(",", ""))
    assert (drawn["allow"], drawn["deny"]) == (3, 2)
    assert "Decisions by result, per hour since" in page.text


def test_audit_page_pages_back_by_agent_over_the_whole_trail(
    tether: RunningTether, operator: httpx.Client
) -> None:
    tether.create_project("p")
    key = tether.create_agent("worker", "p")
    with httpx.Client() as agent:
        for i in range(105):
            authorize(tether, key, "s3:GetObject", f"arn:aws:s3:::b/{i:03d}", agent)

    first = operator.get("/audit", params={"agent": "worker", "since": "2000-01-01T00:00:00Z"})
    assert first.status_code == 200
    assert "arn:aws:s3:::b/104" in first.text and "arn:aws:s3:::b/004" not in first.text
    link = re.search(r'href="(/ui/audit\?[^"]*before=[^"]+)"', first.text)
    assert link is not None, first.text
    second = operator.get(link.group(1).replace("&amp;", "&").removeprefix("/ui"))
    assert second.status_code == 200
    shown = re.findall(r"arn:aws:s3:::b/(\d{3})", second.text)
    assert sorted(shown, reverse=True) == shown and "000" in shown and "104" not in shown


def test_budgets_show_unsettled_reservations_apart_from_spend(
    tether: RunningTether, operator: httpx.Client
) -> None:
    tether.create_project("p")
    daily = tether.call(
        "PUT", "/budgets", json={"project": "p", "period": "daily", "limit_usd": 100}
    ).json()

    async def crash_leaves_a_reservation() -> None:
        runtime = tether.runtime
        (budget,) = [b for b in await runtime.budget_store.all() if b.id == daily["id"]]
        ledger = open_ledger(runtime.db, runtime.sqlite_writer)
        hold = Hold(budget, daily["current_period"], None, 12_340_000, 0)
        assert await ledger.reserve("dead-process", [hold], now_ms() - 1) is None
        assert await runtime.budget_store.mark_unsettled(now_ms())

    tether.run(crash_leaves_a_reservation())
    listed = next(b for b in tether.call("GET", "/budgets").json() if b["id"] == daily["id"])
    assert (listed["spent_usd"], listed["reserved_usd"]) == (0, 0)
    assert listed["unsettled_usd"] == 12.34 and listed["remaining_usd"] == 100 - 12.34
    for page in (operator.get("/overview").text, operator.get("/projects/p").text):
        assert "$12.34 unsettled (reserved, not spent)" in page
