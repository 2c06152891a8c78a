"""``/v1/messages/batches`` through tether with the ``anthropic`` SDK: every request is
policy-checked and audited, the batch reserved at its worst case as one decision, its
results settle the budget to upstream's usage, and a kill cancels it upstream."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest

from tests.budgets.test_budgets import budget, listed
from tests.support.audit_trail import written
from tests.support.fake_upstream import RunningFake
from tests.support.server import RunningTether, start_tether

MODEL = "claude-sonnet-5"  # $2 input, $10 output, $4 1-hour cache write per million
NO_OPUS = """\
permit(principal, action, resource);
@id("no-opus") forbid(principal, action, resource)
  when { resource.arn like "anthropic:model/claude-opus*" };
"""
Sdk = Callable[..., anthropic.Anthropic]


def _requests(n: int, max_tokens: int = 1000, model: str = MODEL) -> list[Any]:
    return [
        {
            "custom_id": f"r{i}",
            "params": {
                "model": model,
                "max_tokens": max_tokens,
                "messages": [{"role": "user", "content": f"question {i}"}],
            },
        }
        for i in range(n)
    ]


def _settled(tether: RunningTether, budget_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while (state := listed(tether, budget_id))["reserved_usd"] != 0:
        assert time.monotonic() < deadline, state
        time.sleep(0.05)
    return state


def test_a_batch_is_reserved_at_worst_case_and_settled_from_its_results(
    gateway: RunningTether, upstream: RunningFake, sdk: Sdk
) -> None:
    daily = budget(gateway, project="p", period="daily", limit_usd=1)
    upstream.fake.batches.seconds = 60
    client = sdk(gateway, gateway.create_agent("batcher", "p"), session="s-batch")
    batch = client.messages.batches.create(requests=_requests(3))
    assert batch.processing_status == "in_progress"
    reserved = listed(gateway, daily["id"])["reserved_usd"]
    assert reserved >= 3 * 1000 * 10 / 1e6, "each request's max_tokens at the output price"
    assert reserved < 0.05

    events = gateway.call("GET", "/audit", params={"session": "s-batch"}).json()
    parts = [e for e in events if (e.get("attributes") or {}).get("custom_id")]
    assert sorted(e["attributes"]["custom_id"] for e in parts) == ["r0", "r1", "r2"]
    assert [b.id for b in client.messages.batches.list()] == [batch.id]

    upstream.fake.batches.batches[batch.id].ends = 0
    ended = client.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended" and ended.request_counts.succeeded == 3
    results = list(client.messages.batches.results(batch.id))
    assert [r.custom_id for r in results] == ["r0", "r1", "r2"]
    usage = [r.result.message.usage for r in results if r.result.type == "succeeded"]
    expected = sum(u.input_tokens * 2 / 1e6 + u.output_tokens * 10 / 1e6 for u in usage) / 2
    assert expected > 0, "the batch discount halves what one-by-one calls would cost"
    state = _settled(gateway, daily["id"])
    assert state["spent_usd"] == pytest.approx(expected, abs=1e-6)
    list(client.messages.batches.results(batch.id))
    assert _settled(gateway, daily["id"])["spent_usd"] == pytest.approx(expected, abs=1e-6), (
        "settled once"
    )


def test_a_batch_over_budget_is_refused_402(
    gateway: RunningTether, upstream: RunningFake, sdk: Sdk
) -> None:
    budget(gateway, project="p", period="daily", limit_usd=0.05)
    client = sdk(gateway, gateway.create_agent("batcher", "p"))
    with pytest.raises(anthropic.APIStatusError) as refused:
        client.messages.batches.create(requests=_requests(10, max_tokens=1000))
    assert refused.value.status_code == 402
    assert not upstream.fake.batches.batches, "nothing sent upstream"


def test_a_forbidden_model_refuses_the_whole_batch(
    gateway: RunningTether, upstream: RunningFake, sdk: Sdk
) -> None:
    gateway.apply_policy("p", NO_OPUS)
    client = sdk(gateway, gateway.create_agent("batcher", "p"))
    requests = _requests(2) + _requests(1, model="claude-opus-5-5")
    with pytest.raises(anthropic.PermissionDeniedError) as refused:
        client.messages.batches.create(requests=requests)
    assert "no-opus" in str(refused.value)
    assert not upstream.fake.batches.batches


def test_killing_the_session_cancels_its_batch_upstream(
    gateway: RunningTether, upstream: RunningFake, sdk: Sdk
) -> None:
    upstream.fake.batches.seconds = 600
    client = sdk(gateway, gateway.create_agent("batcher", "p"), session="s-kill")
    batch = client.messages.batches.create(requests=_requests(2))
    _kill_and_see_canceled(gateway, upstream, "s-kill", batch.id)


@pytest.mark.parametrize(
    "refusal", [(529, "overloaded_error"), (429, "rate_limit_error")], ids=["529", "429"]
)
def test_a_kill_whose_cancel_upstream_refuses_is_enforced_again_until_canceled(
    gateway: RunningTether, upstream: RunningFake, sdk: Sdk, refusal: tuple[int, str]
) -> None:
    """Upstream refuses the cancel twice (overloaded, or rate limited: a 429 had counted
    as canceled): the kill's change has passed, and no later one may come, so tether asks
    again until the batch is canceled."""
    upstream.fake.batches.seconds = 600
    upstream.fake.batches.cancels_refused = 2
    upstream.fake.batches.cancel_refusal = refusal
    client = sdk(gateway, gateway.create_agent("batcher", "p"), session="s-refused")
    batch = client.messages.batches.create(requests=_requests(2))
    _kill_and_see_canceled(gateway, upstream, "s-refused", batch.id)
    assert upstream.fake.batches.cancels_refused == 0


def _kill_and_see_canceled(
    tether: RunningTether, upstream: RunningFake, session: str, batch_id: str
) -> None:
    killed = tether.call("POST", f"/sessions/{session}/kill", json={"reason": "drill"})
    assert killed.status_code == 200, killed.text
    deadline = time.monotonic() + 15
    while batch_id not in upstream.fake.batches.canceled:
        assert time.monotonic() < deadline, "the batch was not canceled upstream"
        time.sleep(0.1)


@pytest.fixture
def gateway_any(
    tmp_path: Path, database_url: str, upstream: RunningFake
) -> Iterator[RunningTether]:
    """The ``gateway`` fixture on each backend in turn (tether settles from the store)."""
    server = start_tether(tmp_path / "data", database_url, anthropic_base_url=upstream.url)
    server.create_project("p", upstream.fake.api_key)
    yield server
    server.stop()


def test_a_batch_canceled_by_a_kill_releases_its_budget_hold(
    gateway_any: RunningTether, upstream: RunningFake, sdk: Sdk
) -> None:
    gateway = gateway_any
    daily = budget(gateway, project="p", period="daily", limit_usd=1)
    upstream.fake.batches.seconds = 600
    client = sdk(gateway, gateway.create_agent("batcher", "p"), session="s-hold")
    batch = client.messages.batches.create(requests=_requests(2))
    assert listed(gateway, daily["id"])["reserved_usd"] > 0
    gateway.call("POST", "/sessions/s-hold/kill", json={"reason": "drill"})
    deadline = time.monotonic() + 15
    while batch.id not in upstream.fake.batches.canceled:
        assert time.monotonic() < deadline, "the batch was not canceled upstream"
        time.sleep(0.1)
    state = _settled(gateway, daily["id"])
    assert state["spent_usd"] == pytest.approx(0, abs=1e-9), "nothing in the batch succeeded"


def test_a_canceled_batch_is_charged_for_what_finished_before_the_cancel(
    gateway_any: RunningTether, upstream: RunningFake, sdk: Sdk
) -> None:
    gateway = gateway_any
    daily = budget(gateway, project="p", period="daily", limit_usd=1)
    upstream.fake.batches.seconds = 600
    upstream.fake.batches.finished_before_cancel = 2
    client = sdk(gateway, gateway.create_agent("batcher", "p"), session="s-part")
    batch = client.messages.batches.create(requests=_requests(5))
    gateway.call("POST", "/sessions/s-part/kill", json={"reason": "drill"})
    state = _settled(gateway, daily["id"])
    usage = [
        r["result"]["message"]["usage"] for r in upstream.fake.batches.batches[batch.id].results
    ]
    assert len(usage) == 2
    expected = sum(u["input_tokens"] * 2 / 1e6 + u["output_tokens"] * 10 / 1e6 for u in usage) / 2
    assert state["spent_usd"] == pytest.approx(expected, abs=1e-6), "at the batch discount"

    events = gateway.call("GET", "/audit", params={"session": "s-part"}).json()
    done = [e for e in events if e["action"] == "model:batches:completed"]
    assert len(done) == 1, done
    assert done[0]["resource"] == f"anthropic:batch/{batch.id}"
    assert "settled by tether after a kill canceled it" in done[0]["reason"]
    assert done[0]["attributes"]["cost_usd"] == pytest.approx(expected, abs=1e-6)
    with pytest.raises(anthropic.APIStatusError):
        list(client.messages.batches.results(batch.id))
    time.sleep(1.5)
    assert listed(gateway, daily["id"])["spent_usd"] == pytest.approx(expected, abs=1e-6), (
        "settled once"
    )


@pytest.mark.parametrize("lease_percent", [0.0, 2.0], ids=["per-call", "leased"])
def test_a_batch_still_ending_when_tether_stops_is_settled_after_the_restart(
    tmp_path: Path, database_url: str, upstream: RunningFake, sdk: Sdk, lease_percent: float
) -> None:
    """With budget leases (the default) too: a batch's hold is a row of its own, not part of
    a lease that ends with the process."""
    settings = {"anthropic_base_url": upstream.url, "budget_lease_percent": lease_percent}
    first = start_tether(tmp_path / "data", database_url, **settings)
    try:
        first.create_project("p", upstream.fake.api_key)
        daily = budget(first, project="p", period="daily", limit_usd=1)
        upstream.fake.batches.seconds = 600
        upstream.fake.batches.cancel_seconds = 600
        upstream.fake.batches.finished_before_cancel = 1
        client = sdk(first, first.create_agent("batcher", "p"), session="s-restart")
        batch = client.messages.batches.create(requests=_requests(3))
        reserved = listed(first, daily["id"])["reserved_usd"]
        first.call("POST", "/sessions/s-restart/kill", json={"reason": "drill"})
        deadline = time.monotonic() + 15
        while batch.id not in upstream.fake.batches.canceled:
            assert time.monotonic() < deadline, "the batch was not canceled upstream"
            time.sleep(0.1)
        time.sleep(1.5)
        assert listed(first, daily["id"])["reserved_usd"] == reserved, "still canceling"
    finally:
        first.stop()
    upstream.fake.batches.batches[batch.id].cancel_ends = 0
    second = start_tether(tmp_path / "data", database_url, **settings)
    try:
        state = _settled(second, daily["id"])
        (done,) = upstream.fake.batches.batches[batch.id].results
        usage = done["result"]["message"]["usage"]
        expected = (usage["input_tokens"] * 2 / 1e6 + usage["output_tokens"] * 10 / 1e6) / 2
        assert state["spent_usd"] == pytest.approx(expected, abs=1e-6)
    finally:
        second.stop()


@pytest.mark.parametrize("replicas", [{"budget_lease_percent": 2.0}], indirect=True, ids=["leased"])
def test_a_batch_made_on_one_replica_is_settled_when_another_reads_its_results(
    replicas: tuple[RunningTether, RunningTether], upstream: RunningFake, sdk: Sdk
) -> None:
    """Budget leases live in one process; a batch's hold must not: the replica that reads
    the results charges what the batch used, and the one that made it holds nothing more."""
    made_on, read_on = replicas
    made_on.create_project("p", upstream.fake.api_key)
    daily = budget(made_on, project="p", period="daily", limit_usd=1)
    upstream.fake.batches.seconds = 60
    key = made_on.create_agent("batcher", "p")
    batch = sdk(made_on, key, session="s-across").messages.batches.create(requests=_requests(3))
    assert listed(made_on, daily["id"])["reserved_usd"] >= 3 * 1000 * 10 / 1e6

    upstream.fake.batches.batches[batch.id].ends = 0
    results = list(sdk(read_on, key, session="s-across").messages.batches.results(batch.id))
    usage = [r.result.message.usage for r in results if r.result.type == "succeeded"]
    assert len(usage) == 3
    expected = sum(u.input_tokens * 2 / 1e6 + u.output_tokens * 10 / 1e6 for u in usage) / 2
    for replica in replicas:
        state = _settled(replica, daily["id"])
        assert state["spent_usd"] == pytest.approx(expected, abs=1e-6), replica.url


def test_killing_a_session_no_process_holds_any_more_cancels_its_batch(
    tmp_path: Path, database_url: str, upstream: RunningFake, sdk: Sdk
) -> None:
    """A batch runs for hours, across a restart, while its session leaves every process's
    memory: a kill then must still reach it."""
    first = start_tether(tmp_path / "data", database_url, anthropic_base_url=upstream.url)
    try:
        first.create_project("p", upstream.fake.api_key)
        upstream.fake.batches.seconds = 600
        client = sdk(first, first.create_agent("batcher", "p"), session="s-later")
        batch = client.messages.batches.create(requests=_requests(2))
    finally:
        first.stop()
    second = start_tether(tmp_path / "data", database_url, anthropic_base_url=upstream.url)
    try:
        _kill_and_see_canceled(second, upstream, "s-later", batch.id)
    finally:
        second.stop()


@pytest.mark.parametrize("status", [502, 200])
def test_a_proxy_page_for_a_batch_is_upstreams_failure_and_holds_nothing(
    gateway: RunningTether, upstream: RunningFake, sdk: Sdk, status: int
) -> None:
    """An HTML page where the batch should be (a proxy in the way): the agent is told it
    was upstream, not that its own body was bad, and the batch's worst case is not held."""
    daily = budget(gateway, project="p", period="daily", limit_usd=1)
    upstream.fake.batches.proxy_page = status
    client = sdk(gateway, gateway.create_agent("batcher", "p"), session="s-proxy")
    with pytest.raises(anthropic.APIStatusError) as refused:
        client.messages.batches.create(requests=_requests(2))
    assert refused.value.status_code == 502, refused.value.response.text
    if status == 200:
        assert "not a message batch" in refused.value.response.text
    assert not upstream.fake.batches.batches
    state = _settled(gateway, daily["id"])
    assert state["spent_usd"] == 0


@pytest.mark.parametrize("status", [502, 200])
def test_a_proxy_page_for_a_batch_read_is_upstreams_failure(
    gateway: RunningTether, upstream: RunningFake, sdk: Sdk, status: int
) -> None:
    """A read answered with an HTML page had the agent told its own body was not valid
    JSON (400); a non-200 is now relayed as it is and a 200 that is not JSON is a 502."""
    client = sdk(gateway, gateway.create_agent("batcher", "p"), session="s-read", retries=0)
    batch = client.messages.batches.create(requests=_requests(1))
    upstream.fake.batches.read_proxy_page = status
    with pytest.raises(anthropic.APIStatusError) as refused:
        client.messages.batches.retrieve(batch.id)
    assert refused.value.status_code == 502, refused.value.response.text
    if status == 200:
        assert "not a JSON object" in refused.value.response.text
    else:
        assert "Bad gateway" in refused.value.response.text
    completed = written(gateway, "s-read", "model:batches:completed", 1)
    expected = "not a JSON object" if status == 200 else "upstream 502"
    assert [(e["resource"], e["result"]) for e in completed] == [
        (f"anthropic:batch/{batch.id}", "error")
    ]
    assert expected in completed[0]["reason"]


def test_every_batch_read_is_settled_with_what_upstream_answered(
    gateway: RunningTether, upstream: RunningFake, sdk: Sdk
) -> None:
    client = sdk(gateway, gateway.create_agent("batcher", "p"), session="s-reads")
    batch = client.messages.batches.create(requests=_requests(1))
    client.messages.batches.retrieve(batch.id)
    client.messages.batches.list()
    upstream.fake.batches.batches[batch.id].ends = 0
    list(client.messages.batches.results(batch.id))
    list(client.messages.batches.results(batch.id))  # settled already: a plain read
    # results() retrieves the batch first: two reads each
    completed = written(gateway, "s-reads", "model:batches:completed", 6)
    assert sorted((e["resource"], e["result"]) for e in completed) == [
        *[("anthropic:batch/" + batch.id, "ok")] * 5,
        ("anthropic:batches", "ok"),
    ]
    charged = [e for e in completed if "requests succeeded" in e["reason"]]
    assert len(charged) == 1, "the first read of the results settled the batch, once"


def test_a_results_line_longer_than_a_line_reader_takes_is_relayed_and_settled(
    gateway: RunningTether, upstream: RunningFake, sdk: Sdk
) -> None:
    """A long answer makes a long results line: aiohttp's line reader refuses one over
    twice its buffer (1 MiB here), which had broken the read and left the batch unsettled."""
    daily = budget(gateway, project="p", period="daily", limit_usd=1)
    upstream.fake.batches.answer_text = "word " * 300_000
    client = sdk(gateway, gateway.create_agent("batcher", "p"), session="s-long")
    batch = client.messages.batches.create(requests=_requests(2))
    results = list(client.messages.batches.results(batch.id))
    assert [r.custom_id for r in results] == ["r0", "r1"]
    messages = [r.result.message for r in results if r.result.type == "succeeded"]
    assert len(messages) == 2
    assert [len(m.content[0].text) for m in messages if m.content[0].type == "text"] == [
        1_500_000
    ] * 2
    usage = [m.usage for m in messages]
    expected = sum(u.input_tokens * 2 / 1e6 + u.output_tokens * 10 / 1e6 for u in usage) / 2
    assert _settled(gateway, daily["id"])["spent_usd"] == pytest.approx(expected, abs=1e-6)


ASK_OPUS = """\
permit(principal, action, resource);
@ask("opus calls are reviewed")
permit(principal, action == Action::"model:messages", resource)
  when { resource.arn like "anthropic:model/claude-opus*" };
"""


def test_a_batch_request_that_needs_approval_waits_for_it_wherever_it_is_in_the_batch(
    gateway: RunningTether, upstream: RunningFake, sdk: Sdk
) -> None:
    """The batch is decided once, on its first request's model; a later request that needs
    an operator's approval had gone upstream without one."""
    gateway.apply_policy("p", ASK_OPUS)
    client = sdk(gateway, gateway.create_agent("batcher", "p"), session="s-ask")
    requests = _requests(2) + _requests(1, model="claude-opus-5-5")
    with pytest.raises(anthropic.APIStatusError) as asked:
        client.messages.batches.create(requests=requests)
    assert "opus calls are reviewed" in asked.value.response.text
    assert not upstream.fake.batches.batches
    (approval,) = gateway.call("GET", "/approvals", params={"state": "pending"}).json()
    assert approval["resource"].startswith("anthropic:model/claude-opus")
    approved = gateway.call("POST", f"/approvals/{approval['id']}/approve", json={})
    assert approved.status_code == 200, approved.text

    batch = client.messages.batches.create(requests=requests)
    assert batch.id in upstream.fake.batches.batches


def test_a_batch_read_by_another_agent_is_charged_to_the_agent_that_made_it(
    gateway: RunningTether, upstream: RunningFake, sdk: Sdk
) -> None:
    """Another agent of the project reads the results: the batch's cost goes to its maker's
    session (and that session's budget), not the reader's."""
    daily = budget(gateway, project="p", period="daily", limit_usd=1)
    maker = sdk(gateway, gateway.create_agent("maker", "p"), session="s-maker")
    batch = maker.messages.batches.create(requests=_requests(2))
    reader = sdk(gateway, gateway.create_agent("reader", "p"), session="s-reader")
    results = list(reader.messages.batches.results(batch.id))
    usage = [r.result.message.usage for r in results if r.result.type == "succeeded"]
    assert len(usage) == 2
    expected = sum(u.input_tokens * 2 / 1e6 + u.output_tokens * 10 / 1e6 for u in usage) / 2
    assert _settled(gateway, daily["id"])["spent_usd"] == pytest.approx(expected, abs=1e-6)

    deadline = time.monotonic() + 10
    while (made := gateway.call("GET", "/sessions/s-maker").json())["cost_usd"] == 0:
        assert time.monotonic() < deadline, made
        time.sleep(0.1)
    assert made["cost_usd"] == pytest.approx(expected, abs=1e-6)
    events = gateway.call("GET", "/audit", params={"action": "model:batches:completed"}).json()
    (done,) = [e for e in events if "requests succeeded" in e["reason"]]
    assert done["resource"] == f"anthropic:batch/{batch.id}"
    assert done["agent"] == "maker" and done["session_id"] == "s-maker", done
    assert "read by the agent: reader, for the agent that made it" in done["reason"], done
    read = gateway.call("GET", "/sessions", params={"agent": "reader"}).json()
    assert all(session["cost_usd"] == 0 for session in read), read
