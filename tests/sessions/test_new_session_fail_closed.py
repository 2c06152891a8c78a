"""Fail closed on the new-session path: a client that names no session (the anthropic SDK)
gets a session made for its conversation; when that session's row cannot be written, the
call is refused with a clear 503 and never reaches the model, and the conversation gets
its session once the database takes it again."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.databases import fetch_sql, run_sql
from tests.support.fake_upstream import RunningFake
from tests.support.server import RunningTether, start_tether

REFUSE_SQLITE = (
    "CREATE TRIGGER refuse_sessions BEFORE INSERT ON sessions "
    "BEGIN SELECT RAISE(ABORT, 'the disk is full'); END"
)
REFUSE_POSTGRES = """
CREATE FUNCTION refuse_sessions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'the disk is full' USING ERRCODE = 'disk_full'; END $$;
CREATE TRIGGER refuse_sessions BEFORE INSERT ON sessions
FOR EACH ROW EXECUTE FUNCTION refuse_sessions();
"""
ALLOW_SQLITE = "DROP TRIGGER refuse_sessions"
ALLOW_POSTGRES = "DROP TRIGGER refuse_sessions ON sessions"


@pytest.fixture
def gateway_any(
    tmp_path: Path, database_url: str, upstream: RunningFake
) -> Iterator[tuple[RunningTether, str]]:
    server = start_tether(
        tmp_path / "data",
        database_url,
        anthropic_base_url=upstream.url,
        budget_lease_percent=2.0,
    )
    server.create_project("p", upstream.fake.api_key)
    yield server, database_url
    server.stop()


def _ask(tether: RunningTether, key: str, text: str, stream: bool) -> httpx.Response:
    return httpx.post(
        f"{tether.url}/v1/messages",
        headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
        json={
            "model": "claude-sonnet-5",
            "max_tokens": 64,
            "stream": stream,
            "messages": [{"role": "user", "content": text}],
        },
        timeout=30,
    )


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_a_new_session_that_cannot_be_written_refuses_the_call(
    gateway_any: tuple[RunningTether, str], upstream: RunningFake, stream: bool
) -> None:
    tether, url = gateway_any
    key = tether.create_agent("sdk-script", "p")
    # A per-session budget: the call also holds a lease on the new session's period.
    limit = {"project": "p", "period": "session", "limit_usd": 100}
    assert tether.call("PUT", "/budgets", json=limit).status_code < 300
    sqlite = url.startswith("sqlite")
    run_sql(url, REFUSE_SQLITE if sqlite else REFUSE_POSTGRES)
    before = len(upstream.fake.received)

    refused = _ask(tether, key, "a conversation that starts now", stream)

    assert refused.status_code == 503, refused.text
    assert "Traceback" not in refused.text
    if stream:  # an SSE error event
        assert "store_unavailable" in refused.text and "database" in refused.text
    else:
        error = refused.json()["error"]
        assert error["code"] == "store_unavailable"
        assert "database cannot be written" in error["message"]
    assert len(upstream.fake.received) == before, "a refused call reached the model"
    assert fetch_sql(url, "SELECT id FROM sessions") == []

    run_sql(url, ALLOW_SQLITE if sqlite else ALLOW_POSTGRES)
    allowed = _ask(tether, key, "a conversation that starts now", stream)
    assert allowed.status_code == 200, allowed.text
    assert len(upstream.fake.received) == before + 1
    stored = fetch_sql(url, "SELECT id, state FROM sessions")
    assert [row["state"] for row in stored] == ["active"]
    assert uuid.UUID(stored[0]["id"]).version == 7, "a new session's id is time-ordered"
    sessions = tether.call("GET", "/sessions").json()
    assert [s["id"] for s in sessions] == [stored[0]["id"]]


SLOW_SESSIONS_POSTGRES = """
CREATE FUNCTION slow_sessions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_sleep(1.5); RETURN NEW; END $$;
CREATE TRIGGER slow_sessions BEFORE INSERT ON sessions
FOR EACH ROW EXECUTE FUNCTION slow_sessions();
"""
"""On PostgreSQL a new session's row is written beside the call's other work: held back
here past a flush of the sessions' activity (every second), so what waits for it shows."""


def test_a_new_session_out_of_budget_at_its_first_call_is_stopped_for_good(
    gateway_any: tuple[RunningTether, str], upstream: RunningFake
) -> None:
    """The session's row is still on its way when its first call is refused by its
    budget: the stop is recorded on the row all the same (written after it)."""
    tether, url = gateway_any
    key = tether.create_agent("sdk-script", "p")
    limit = {"project": "p", "period": "session", "limit_usd": 0.000001}
    assert tether.call("PUT", "/budgets", json=limit).status_code < 300
    if not url.startswith("sqlite"):
        run_sql(url, SLOW_SESSIONS_POSTGRES)
    before = len(upstream.fake.received)

    refused = _ask(tether, key, "an expensive conversation", stream=False)

    assert refused.status_code != 200, refused.text
    assert refused.json()["error"]["code"] == "budget_exceeded"
    assert len(upstream.fake.received) == before
    stored = fetch_sql(url, "SELECT state FROM sessions")
    assert [row["state"] for row in stored] == ["budget_exhausted"]
    again = _ask(tether, key, "an expensive conversation", stream=False)
    assert again.status_code != 200 and len(upstream.fake.received) == before


REFUSE_LEASES_SQLITE = (
    "CREATE TRIGGER refuse_leases BEFORE INSERT ON budget_reservations "
    "WHEN NEW.period_key LIKE 'session:%' "
    "BEGIN SELECT RAISE(ABORT, 'the disk is full'); END"
)
REFUSE_LEASES_POSTGRES = """
CREATE FUNCTION refuse_leases() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'the disk is full' USING ERRCODE = 'disk_full'; END $$;
CREATE TRIGGER refuse_leases BEFORE INSERT ON budget_reservations
FOR EACH ROW WHEN (NEW.period_key LIKE 'session:%') EXECUTE FUNCTION refuse_leases();
"""


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_a_new_sessions_budget_lease_that_cannot_be_written_refuses_the_call(
    gateway_any: tuple[RunningTether, str], upstream: RunningFake, stream: bool
) -> None:
    """A new session's first lease on its own budget period is decided in memory (the
    period is empty) and written with the decision; when that write fails the call does
    not go on, and the trail says it was refused. A daily budget too: its lease commits
    while the call waits for it, taking the failed session lease's write with it."""
    tether, url = gateway_any
    key = tether.create_agent("sdk-script", "p")
    for period in ("session", "daily"):
        limit = {"project": "p", "period": period, "limit_usd": 100}
        assert tether.call("PUT", "/budgets", json=limit).status_code < 300
    sqlite = url.startswith("sqlite")
    run_sql(url, REFUSE_LEASES_SQLITE if sqlite else REFUSE_LEASES_POSTGRES)
    before = len(upstream.fake.received)

    refused = _ask(tether, key, "a conversation with a budget", stream)

    assert refused.status_code == 503, refused.text
    assert "store_unavailable" in refused.text and "the disk is full" in refused.text
    assert len(upstream.fake.received) == before, "a refused call reached the model"
    leases = "SELECT id FROM budget_reservations WHERE period_key LIKE 'session:%'"
    assert fetch_sql(url, leases) == []
    trail = tether.call("GET", "/audit", params={"agent": "sdk-script"}).json()
    told = [(e["result"], e["code"]) for e in trail if e["action"] == "model:messages"]
    assert ("deny", "store_unavailable") in told, told

    run_sql(url, "DROP TRIGGER refuse_leases" + ("" if sqlite else " ON budget_reservations"))
    allowed = _ask(tether, key, "a conversation with a budget", stream)
    assert allowed.status_code == 200, allowed.text
    assert len(upstream.fake.received) == before + 1
    assert len(fetch_sql(url, leases)) == 1


def test_on_postgresql_a_new_sessions_row_landing_late_keeps_its_first_calls_count(
    tmp_path: Path, postgres_url: str, upstream: RunningFake
) -> None:
    """The sessions' activity is flushed every second; a flush while a new session's row
    is still on its way keeps that session's counts for the next one instead of updating
    a row that is not there yet (and losing them)."""
    tether = start_tether(tmp_path / "data", postgres_url, anthropic_base_url=upstream.url)
    try:
        tether.create_project("p", upstream.fake.api_key)
        key = tether.create_agent("sdk-script", "p")
        run_sql(postgres_url, SLOW_SESSIONS_POSTGRES)

        answer = _ask(tether, key, "a conversation whose row lands late", stream=False)
        assert answer.status_code == 200, answer.text
        session_id = answer.headers["tether-session-id"]
        deadline = time.monotonic() + 5
        while (count := tether.call("GET", f"/sessions/{session_id}").json()["request_count"]) < 1:
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert count == 1
    finally:
        tether.stop()
