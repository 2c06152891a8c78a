"""500 items in batches of 25 through the MCP tools, with a verification that fails once:
the hand-out stops, the operator is alerted, exactly the verified items are done, and
after ``tether tasks resume`` the task completes. Claude Code's Stop is held meanwhile."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from tests.support.receiver import Receiver
from tests.support.server import RunningTether
from tests.tasks.mcp_client import ToolFailed, call_tools
from tests.tasks.support import create_task, hook, task_yaml
from tether.cli.main import app
from tether.clock import now_ms
from tether.store.schema import task_batches


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver().start()
    yield running
    running.stop()


def wait_for_delivery(receiver: Receiver, text: str) -> dict[str, object]:
    deadline = time.monotonic() + 30
    while True:
        for delivery in receiver.deliveries:
            body: dict[str, object] = json.loads(delivery.body)
            if text in str(body.get("text")):
                return body
        assert time.monotonic() < deadline, "the operator was never alerted"
        time.sleep(0.05)


def test_a_failed_verification_stops_the_hand_out_until_resumed(
    tether_any: RunningTether, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    tether = tether_any
    tether.create_project("p")
    key = tether.create_agent("migrator", "p")
    hooked = tether.call(
        "POST", "/projects/p/webhooks", json={"kind": "slack", "url": receiver.url}
    )
    assert hooked.status_code == 201, hooked.text
    task = create_task(tether, "p", task_yaml(items=500, batch_size=25), agent="migrator")
    started = hook(tether, key, "SessionStart", "s-mig", source="startup")
    assert "500 items in 20 batches of 25" in started["hookSpecificOutput"]["additionalContext"]

    first = call_tools(tether.url, key, [("next_batch", {})])[0]
    assert first["batch"] == 0 and first["items"] == [f"rec-{n:04d}" for n in range(25)]
    held = hook(tether, key, "Stop", "s-mig")
    assert held["decision"] == "block"
    assert f"batch 0 of task {task['id']} is claimed by this session" in held["reason"]

    calls: list[tuple[str, dict[str, object]]] = [
        ("complete_batch", {"batch": 0, "passed": True, "output": "25 ok"})
    ]
    for number in range(1, 8):
        calls += [
            ("next_batch", {}),
            ("complete_batch", {"batch": number, "passed": number != 7, "output": "checked"}),
        ]
    calls += [("next_batch", {})]
    answers = call_tools(tether.url, key, calls)
    handed = [a["batch"] for a in answers[1:-1:2]]
    assert handed == list(range(1, 8))
    assert answers[-2]["task_state"] == "needs_attention"
    refused = answers[-1]
    assert isinstance(refused, ToolFailed) and "needs attention" in str(refused)
    assert hook(tether, key, "Stop", "s-mig") == {}, "no batch is held any more"

    shown = tether.call("GET", f"/tasks/{task['id']}").json()
    assert shown["state"] == "needs_attention"
    assert (shown["batches_verified"], shown["items_done"]) == (7, 175)
    assert shown["batches_failed"] == [7]
    alert = wait_for_delivery(receiver, task["id"])
    assert "verification of batch 7 failed" in str(alert["text"])
    stopped = tether.call("GET", "/audit", params={"action": "task:needs_attention"}).json()
    assert [e["session_id"] for e in stopped] == ["s-mig"]

    monkeypatch.setenv("TETHER_URL", tether.url)
    monkeypatch.setenv("TETHER_ADMIN_TOKEN", tether.admin_token)
    resumed = CliRunner().invoke(app, ["tasks", "resume", task["id"], "-r", "fixed 3 records"])
    assert resumed.exit_code == 0, resumed.output

    rest: list[tuple[str, dict[str, object]]] = []
    for number in [7, *range(8, 20)]:
        rest += [("next_batch", {}), ("complete_batch", {"batch": number, "passed": True})]
    rest += [("next_batch", {"task_id": task["id"]})]
    answers = call_tools(tether.url, key, rest)
    assert answers[-2]["message"].endswith("the task is complete")
    assert [a["batch"] for a in answers[:-1:2]] == [7, *range(8, 20)]
    assert answers[-1]["batch"] is None and answers[-1]["state"] == "completed"
    shown = tether.call("GET", f"/tasks/{task['id']}").json()
    assert (shown["state"], shown["items_done"], shown["batches_failed"]) == ("completed", 500, [])


def test_two_sessions_never_hold_the_same_batch(tether: RunningTether) -> None:
    tether.create_project("p")
    key = tether.create_agent("a", "p")
    task = create_task(tether, "p", task_yaml(items=60, batch_size=25), agent="a")
    one = call_tools(
        tether.url,
        key,
        [("next_batch", {"task_id": task["id"]}), ("next_batch", {"task_id": task["id"]})],
        {"X-Claude-Code-Session-Id": "s-one"},
    )
    two = call_tools(
        tether.url,
        key,
        [("next_batch", {"task_id": task["id"]})],
        {"X-Claude-Code-Session-Id": "s-two"},
    )
    assert [a["batch"] for a in one] == [0, 0], "the holder gets its own batch again"
    assert two[0]["batch"] == 1
    stolen = call_tools(
        tether.url,
        key,
        [("complete_batch", {"task_id": task["id"], "batch": 0, "passed": True})],
        {"X-Claude-Code-Session-Id": "s-two"},
    )[0]
    assert isinstance(stolen, ToolFailed) and "not held by this session" in str(stolen)


def test_mcp_refuses_an_unknown_key(tether: RunningTether) -> None:
    tether.create_project("p")
    answer = call_tools(tether.url, "tth_not-a-real-key", [("get_task", {})])[0]
    assert isinstance(answer, ToolFailed) and "invalid_key" in str(answer)


def test_a_lapsed_claim_is_handed_out_again(tether: RunningTether) -> None:
    tether.create_project("p")
    key = tether.create_agent("a", "p")
    task = create_task(tether, "p", task_yaml(items=60, batch_size=25), agent="a")
    one = {"X-Claude-Code-Session-Id": "s-gone"}
    two = {"X-Claude-Code-Session-Id": "s-next"}
    taken = call_tools(tether.url, key, [("next_batch", {"task_id": task["id"]})], one)[0]
    assert taken["batch"] == 0

    async def lapse() -> None:
        async with tether.runtime.db.write() as conn:
            await conn.execute(update(task_batches).values(claimed_until=now_ms() - 1))

    tether.run(lapse())
    assert hook(tether, key, "Stop", "s-gone") == {}, "a lapsed claim does not hold the Stop"
    again = call_tools(tether.url, key, [("next_batch", {"task_id": task["id"]})], two)[0]
    assert again["batch"] == 0, "the lapsed batch goes to the next session"
    late = call_tools(
        tether.url,
        key,
        [("complete_batch", {"task_id": task["id"], "batch": 0, "passed": True})],
        one,
    )[0]
    assert isinstance(late, ToolFailed) and "not held by this session" in str(late)


def test_another_agent_naming_the_session_gets_nothing_of_the_task(tether: RunningTether) -> None:
    tether.create_project("p")
    owner = tether.create_agent("owner", "p")
    other = tether.create_agent("other", "p")
    task = create_task(tether, "p", task_yaml(items=30, batch_size=25), agent="owner")
    hook(tether, owner, "SessionStart", "s-owned", source="startup")
    session = {"X-Claude-Code-Session-Id": "s-owned"}
    answers = call_tools(
        tether.url, other, [("get_task", {}), ("next_batch", {"task_id": task["id"]})], session
    )
    assert all(isinstance(a, ToolFailed) and "has no" in str(a) for a in answers), answers
