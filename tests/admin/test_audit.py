"""Reading the audit trail through the admin API: counts by result over time."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.support.server import RunningTether


def _ask(tether: RunningTether, key: str, n: int) -> None:
    for i in range(n):
        httpx.post(
            f"{tether.url}/v1/authorize",
            json={"action": "s3:GetObject", "resource": f"arn:aws:s3:::b/{i}"},
            headers={"Authorization": f"Bearer {key}"},
        )


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_results_are_counted_per_bucket_and_project(tether_any: RunningTether) -> None:
    started = datetime.now(UTC)
    tether_any.create_project("open")
    tether_any.create_project("closed", policy=None)  # no policy: everything is denied
    _ask(tether_any, tether_any.create_agent("a", "open"), 3)
    _ask(tether_any, tether_any.create_agent("b", "closed"), 2)
    _ask(tether_any, tether_any.create_agent("c", "closed"), 1)

    def counts(**params: str) -> Counter[str]:
        answer = tether_any.call("GET", "/audit/results", params={"bucket": "60", **params})
        assert answer.status_code == 200, answer.text
        rows = answer.json()
        for row in rows:
            start = datetime.fromisoformat(row["start"])
            assert start.second == 0 and start.microsecond == 0  # whole minutes
            assert start >= started.replace(second=0, microsecond=0)
        total: Counter[str] = Counter()
        for row in rows:
            total[row["result"]] += row["count"]
        return total

    everything = counts(since=_iso(started - timedelta(minutes=1)))
    assert (everything["allow"], everything["deny"]) == (3, 3)
    assert everything["ok"] > 0  # the admin calls that set this up, audited too
    opened = counts(project="open")  # the last 24 h by default
    assert (opened["allow"], opened["deny"]) == (3, 0)
    assert counts(project="closed", agent="b")["deny"] == 2
    later = _iso(datetime.now(UTC) + timedelta(minutes=1))
    assert counts(since=later, until=_iso(datetime.now(UTC) + timedelta(minutes=2))) == {}


def test_newest_first_pages_through_an_agents_events_exactly(tether_any: RunningTether) -> None:
    tether_any.create_project("p")
    mine, other = tether_any.create_agent("a", "p"), tether_any.create_agent("b", "p")
    for _ in range(4):
        _ask(tether_any, mine, 2)
        _ask(tether_any, other, 1)
    oldest_first = tether_any.call("GET", "/audit", params={"agent": "a"}).json()
    assert len(oldest_first) == 8

    seen: list[dict] = []
    params = {"agent": "a", "order": "newest", "limit": "3"}
    while True:
        page = tether_any.call("GET", "/audit", params=params)
        assert page.status_code == 200, page.text
        seen += page.json()
        cursor = page.headers.get("X-Tether-Next-Page")
        if cursor is None:
            break
        name, _, value = cursor.partition("=")
        assert name == "before"
        params = {**params, "before": value}
    assert [e["id"] for e in seen] == [e["id"] for e in reversed(oldest_first)]


def test_a_bad_newest_first_cursor_is_400(tether: RunningTether) -> None:
    answer = tether.call("GET", "/audit", params={"order": "newest", "before": "12"})
    assert answer.status_code == 400
    assert "TS:SEQ" in answer.json()["error"]["message"]


@pytest.mark.parametrize(
    ("params", "mentions"),
    [
        ({"bucket": "59"}, "bucket"),
        ({"bucket": "1h"}, "bucket"),
        ({"since": "2026-11-25T14:00:00Z", "until": "2026-11-25T13:00:00Z"}, "before"),
        ({"since": "2026-01-01T00:00:00Z", "bucket": "60"}, "buckets"),
        ({"since": "yesterday"}, "since"),
    ],
)
def test_bad_result_counts_queries_are_400(
    tether: RunningTether, params: dict[str, str], mentions: str
) -> None:
    answer = tether.call("GET", "/audit/results", params=params)
    assert answer.status_code == 400, answer.text
    assert mentions in answer.json()["error"]["message"]


def test_result_counts_of_an_unknown_project_are_404(tether: RunningTether) -> None:
    assert tether.call("GET", "/audit/results", params={"project": "ghost"}).status_code == 404
