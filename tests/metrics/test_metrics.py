"""``GET /metrics`` after real traffic: the counts match what the agents did."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import anthropic
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.databases import sqlite_url
from tests.support.fake_upstream import RunningFake
from tests.support.server import RunningTether, start_tether
from tether.fakes.anthropic import FakeReply


def scrape(tether: RunningTether) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = httpx.get(
        f"{tether.url}/metrics", headers={"Authorization": f"Bearer {tether.admin_token}"}
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def ask(client: httpx.Client, tether: RunningTether, headers: dict[str, str], text: str) -> None:
    """One Messages call through ``tether``'s front door; it must be answered."""
    answer = client.post(
        f"{tether.url}/v1/messages",
        headers=headers,
        json={
            "model": "claude-sonnet-5",
            "max_tokens": 16,
            "messages": [{"role": "user", "content": text}],
        },
    )
    assert answer.status_code == 200, answer.text


def test_metrics_count_decisions_tokens_and_cost_as_the_trail_records_them(
    gateway: RunningTether, upstream: RunningFake, sdk: Callable[..., anthropic.Anthropic]
) -> None:
    key = gateway.create_agent("a", "p")
    agent = sdk(gateway, key)
    upstream.fake.default = FakeReply(input_tokens=120, output_tokens=30)
    for n in range(3):
        with agent.messages.stream(
            model="claude-sonnet-5", max_tokens=50, messages=[{"role": "user", "content": f"{n}"}]
        ) as stream:
            stream.get_final_message()
    denied = httpx.post(
        f"{gateway.url}/v1/authorize",
        json={"session_id": "s", "action": "s3:DeleteBucket", "resource": "arn:aws:s3:::prod"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert denied.status_code in (202, 403)
    bad_key = httpx.post(
        f"{gateway.url}/v1/messages",
        json={"model": "m", "max_tokens": 1, "messages": []},
        headers={"x-api-key": "tth_not_a_real_key", "anthropic-version": "2023-06-01"},
    )
    assert bad_key.status_code == 401

    deadline = time.monotonic() + 5
    while True:
        samples = scrape(gateway)
        completed = value(
            samples,
            "tether_events_total",
            source="anthropic",
            service="model",
            phase="completion",
            result="ok",
            code="",
        )
        if completed >= 3 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert completed == 3
    allowed = value(
        samples,
        "tether_events_total",
        source="anthropic",
        service="model",
        phase="decision",
        result="allow",
        code="",
    )
    assert allowed == 3
    labels = {"project": "p", "model": "claude-sonnet-5"}
    assert value(samples, "tether_model_tokens_total", type="input", **labels) == 360
    assert value(samples, "tether_model_tokens_total", type="output", **labels) == 90
    assert value(samples, "tether_model_cost_usd_total", **labels) > 0
    assert not [name for name, _ in samples if name.endswith("_created")]
    assert value(samples, "process_resident_memory_bytes") > 0
    refused = sum(
        v
        for (n, labels), v in samples.items()
        if n == "tether_events_total"
        and ("service", "s3") in labels
        and ("phase", "decision") in labels
    )
    assert refused == 1
    assert value(samples, "tether_decision_seconds_count", source="anthropic") >= 3
    assert (
        value(
            samples, "tether_unauthenticated_refusals_total", door="anthropic", code="invalid_key"
        )
        == 1
    )
    assert value(samples, "tether_audit_commit_seconds_count") >= 1
    assert value(samples, "tether_audit_write_failures_total") == 0
    assert ("tether_streams_in_flight", ()) in samples
    assert "tth_not_a_real_key" not in str(samples)


def test_a_metrics_token_keeps_scrapes_without_it_out(tmp_path: Path) -> None:
    server = start_tether(tmp_path / "data", sqlite_url(str(tmp_path)), metrics_token="m-secret")
    try:
        missing = httpx.get(f"{server.url}/metrics")
        assert missing.status_code == 401
        assert "Bearer <TETHER_METRICS_TOKEN>" in missing.json()["error"]["message"]
        admin = httpx.get(
            f"{server.url}/metrics", headers={"Authorization": f"Bearer {server.admin_token}"}
        )
        assert admin.status_code == 200
        wrong = httpx.get(f"{server.url}/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and "nope" not in wrong.text
        right = httpx.get(f"{server.url}/metrics", headers={"Authorization": "Bearer m-secret"})
        assert right.status_code == 200 and "tether_events_total" in right.text
    finally:
        server.stop()


def test_metrics_are_closed_by_default_and_open_only_when_told(tmp_path: Path) -> None:
    closed = start_tether(tmp_path / "a", sqlite_url(str(tmp_path / "a")))
    try:
        refused = httpx.get(f"{closed.url}/metrics")
        assert refused.status_code == 401 and "TETHER_METRICS_PUBLIC" in refused.text
        agent_key = httpx.get(f"{closed.url}/metrics", headers={"Authorization": "Bearer tth_x"})
        assert agent_key.status_code == 401
    finally:
        closed.stop()
    opened = start_tether(tmp_path / "b", sqlite_url(str(tmp_path / "b")), metrics_public=True)
    try:
        assert httpx.get(f"{opened.url}/metrics").status_code == 200
    finally:
        opened.stop()


@pytest.mark.parametrize("gateway", [{"budget_lease_percent": 2.0}], indirect=True)
def test_a_call_that_starts_a_session_costs_no_more_writer_commits_than_one_in_a_session(
    gateway: RunningTether, upstream: RunningFake
) -> None:
    """The new session's row and its first lease on a per-session budget commit with the
    decision's audit event (``tether_sqlite_writer_commits`` counts the transactions): a
    client that names no session costs what Claude Code's calls cost."""
    key = gateway.create_agent("sdk-script", "p")
    limit = {"project": "p", "period": "session", "limit_usd": 100}
    assert gateway.call("PUT", "/budgets", json=limit).status_code < 300
    calls = 30

    def writer_work(client: httpx.Client, session: str | None, tag: str) -> tuple[float, float]:
        """(commits, pieces) over ``calls`` calls, each a new conversation."""
        headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
        if session is not None:
            headers["X-Claude-Code-Session-Id"] = session
        before = scrape(gateway)
        for n in range(calls):
            ask(client, gateway, headers, f"{tag} {n}")
        after = scrape(gateway)
        return tuple(  # type: ignore[return-value]
            value(after, name) - value(before, name)
            for name in ("tether_sqlite_writer_commits_total", "tether_sqlite_writer_pieces_total")
        )

    with httpx.Client(timeout=30) as client:
        writer_work(client, "warm-up", "warm-up")
        in_a_session = writer_work(client, "one-session", "in a session")
        new_sessions = writer_work(client, None, "a new conversation")

    assert len(gateway.call("GET", "/sessions").json()) == calls + 2
    assert new_sessions[1] >= 3 * calls, "a decision, a session row and a lease a call"
    # It was one commit more a call: the row and the lease, then the decision.
    assert new_sessions[0] <= in_a_session[0] + 0.3 * calls, (new_sessions, in_a_session)


def _growth_over_calls(gateway: RunningTether, agent: str, calls: int) -> Callable[[str], float]:
    """How much each sample of ``/metrics`` grew over ``calls`` calls of a new agent."""
    key = gateway.create_agent(agent, "p")
    before = scrape(gateway)
    with httpx.Client(timeout=30) as client:
        for n in range(calls):
            ask(client, gateway, {"x-api-key": key, "anthropic-version": "2023-06-01"}, f"{n}")
    after = scrape(gateway)
    return lambda name: value(after, name) - value(before, name)


def test_a_decisions_commit_is_made_on_the_event_loop_and_wakes_no_thread(
    gateway: RunningTether, upstream: RunningFake
) -> None:
    """As shipped, a decision's brief writes commit on the event loop's thread, synced by
    the helper process (``tether_sqlite_writer_loop_commits``): no writer-thread wake-up
    a call, only for the periodic flushes and the first commit after each checkpoint (two
    a second). Each sync is timed (``tether_sqlite_wal_sync_seconds``); a commit made as
    a scrape is read (the call's settling, after its answer) may be counted in one and not
    yet in the other."""
    grew = _growth_over_calls(gateway, "on-the-loop", 10)
    on_loop = grew("tether_sqlite_writer_loop_commits_total")
    commits = grew("tether_sqlite_writer_commits_total")
    assert 5 <= on_loop <= commits, (on_loop, commits)
    assert grew("tether_sqlite_writer_handoff_seconds_count") <= commits - on_loop + 1
    held = grew("tether_sqlite_writer_loop_commit_seconds_count")
    assert held == on_loop, "each commit on the loop is timed"
    assert grew("tether_sqlite_writer_loop_commit_seconds_sum") > 0
    synced = grew("tether_sqlite_wal_sync_seconds_count")
    assert abs(synced - on_loop) <= 2, ("each is synced and timed", synced, on_loop)
    assert grew("tether_sqlite_wal_sync_seconds_sum") > 0


@pytest.mark.parametrize("gateway", [{"sqlite_commit_on_loop": False}], indirect=True)
def test_the_writer_threads_wake_ups_are_a_histogram_of_how_long_each_took(
    gateway: RunningTether, upstream: RunningFake
) -> None:
    """With commits on the loop turned off, each call's decision hands its commit to the
    idle writer thread: ``tether_sqlite_writer_handoff_seconds`` counts those wake-ups by
    how long the thread took to start (the interpreter lock's convoy under load), at most
    one a commit. A drain under way as the scrape is read (a periodic flush's) has its
    wake-up counted and not yet its commit."""
    grew = _growth_over_calls(gateway, "handoffs", 5)
    name = "tether_sqlite_writer_handoff_seconds"
    handoffs = grew(f"{name}_count")
    commits = grew("tether_sqlite_writer_commits_total")
    assert 5 <= handoffs <= commits + 1, (handoffs, commits)
    assert grew(f"{name}_sum") > 0
    after = scrape(gateway)
    buckets = sorted(
        (float(dict(labels)["le"]), count)
        for (sample, labels), count in after.items()
        if sample == f"{name}_bucket"
    )
    assert [le for le, _ in buckets][-1] == float("inf")
    assert [count for _, count in buckets] == sorted(count for _, count in buckets)
    assert buckets[-1][1] == value(after, f"{name}_count")


def test_sqlite_memory_is_scraped_beside_the_writer_counters(
    gateway: RunningTether, upstream: RunningFake, sdk: Callable[..., anthropic.Anthropic]
) -> None:
    """SQLite's page caches and prepared statements are in the server's RSS but in no
    Python object: ``tether_sqlite_memory_bytes`` shows them, and it grows as the store is
    used (the decision's inserts are prepared and kept)."""
    before = value(scrape(gateway), "tether_sqlite_memory_bytes")
    agent = sdk(gateway, gateway.create_agent("a", "p"))
    for n in range(3):
        agent.messages.create(
            model="claude-sonnet-5", max_tokens=16, messages=[{"role": "user", "content": str(n)}]
        )
    after = value(scrape(gateway), "tether_sqlite_memory_bytes")
    assert 0 < before < after < 64 * 2**20, (before, after)


TEXT_CACHES = (
    "redacted_texts",
    "secret_names",
    "audit_texts",
    "audit_attribute_names",
    "audit_column_sets",
    "policy_answers",
    "policy_entity_sets",
)


def test_the_caches_each_new_agent_adds_to_are_shown_by_structure(
    gateway: RunningTether, upstream: RunningFake, sdk: Callable[..., anthropic.Anthropic]
) -> None:
    """A fleet's memory grows with its agents until these bounded caches are full (short
    texts redacted and cleaned, column sets, policy answers): a soak or an operator sees
    them in ``tether_in_memory_entries`` beside the per-session structures."""

    def entries() -> dict[str, float]:
        samples = scrape(gateway)
        return {s: value(samples, "tether_in_memory_entries", structure=s) for s in TEXT_CACHES}

    sdk(gateway, gateway.create_agent("first", "p")).messages.create(
        model="claude-sonnet-5", max_tokens=16, messages=[{"role": "user", "content": "hi"}]
    )
    before = entries()
    for n in range(3):
        sdk(gateway, gateway.create_agent(f"newcomer-{n}", "p")).messages.create(
            model="claude-sonnet-5", max_tokens=16, messages=[{"role": "user", "content": "hi"}]
        )
    after = entries()
    for structure in ("redacted_texts", "audit_texts", "audit_column_sets"):
        assert after[structure] >= before[structure] + 3, (structure, before, after)
    assert all(0 <= after[s] <= 16_384 for s in TEXT_CACHES), after
