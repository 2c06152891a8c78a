"""The Messages gateway with a task: the opt-in ``system`` injection (the agent's own
system prompt intact, the block after its last cache breakpoint) and drift warnings."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

import anthropic
import pytest

from tests.support.fake_upstream import RunningFake
from tests.support.receiver import Receiver
from tests.support.server import RunningTether
from tests.tasks.support import agent_call, create_task, hook, task_yaml
from tether.fakes.anthropic import FakeReply
from tether.tasks.block import BEGIN, END

SYSTEM = [
    {"type": "text", "text": "You are a careful migrator.\n\tKeep ids — always. ✓"},
    {
        "type": "text",
        "text": "Long reference material " * 50,
        "cache_control": {"type": "ephemeral"},
    },
]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver().start()
    yield running
    running.stop()


def test_the_task_block_follows_the_agents_own_system_prompt(
    gateway: RunningTether,
    upstream: RunningFake,
    sdk: Callable[..., anthropic.Anthropic],
) -> None:
    key = gateway.create_agent("sdk-agent", "p")
    opted = gateway.call("PATCH", "/projects/p/drift", json={"system_prompt": True})
    assert opted.status_code == 200 and opted.json()["system_prompt"] is True
    create_task(gateway, "p", task_yaml(), agent="sdk-agent")
    client = sdk(gateway, key, session="s-sdk")
    for _ in range(2):
        client.messages.create(
            model="claude-sonnet-5",
            max_tokens=100,
            system=SYSTEM,  # type: ignore[arg-type]
            messages=[{"role": "user", "content": "go on"}],
        )
    bodies = [r.body for r in upstream.fake.received]
    assert len(bodies) == 2
    for body in bodies:
        system = body["system"]
        assert system[:2] == SYSTEM, "the agent's own blocks arrive as they were sent"
        assert system[0]["text"].encode() == SYSTEM[0]["text"].encode()
        block = system[2]
        assert set(block) == {"type", "text"}, "no breakpoint of its own"
        assert block["text"].startswith(BEGIN) and block["text"].endswith(END)
        assert "Move every customer record" in block["text"]
    assert bodies[0]["system"][2] == bodies[1]["system"][2], "the same block: the cache hits"

    create_task(gateway, "p", task_yaml(name="second"), session="s-plain")
    plain = sdk(gateway, key, session="s-plain")
    plain.messages.create(
        model="claude-sonnet-5",
        max_tokens=100,
        system="Be brief.",
        messages=[{"role": "user", "content": "hi"}],
    )
    system = upstream.fake.received[-1].body["system"]
    assert system[0] == {"type": "text", "text": "Be brief."}
    assert "Task: second" in system[1]["text"], "the task attached to this session"


def test_without_the_opt_in_the_request_is_forwarded_untouched(
    gateway: RunningTether, upstream: RunningFake, sdk: Callable[..., anthropic.Anthropic]
) -> None:
    key = gateway.create_agent("sdk-agent", "p")
    create_task(gateway, "p", task_yaml(), agent="sdk-agent")
    sdk(gateway, key, session="s-1").messages.create(
        model="claude-sonnet-5",
        max_tokens=100,
        system="Be brief.",
        messages=[{"role": "user", "content": "hi"}],
    )
    assert upstream.fake.received[-1].body["system"] == "Be brief."


def test_drift_warnings_are_audited_alerted_once_and_remind_to_checkpoint(
    gateway: RunningTether,
    upstream: RunningFake,
    receiver: Receiver,
    sdk: Callable[..., anthropic.Anthropic],
) -> None:
    key = gateway.create_agent("drifter", "p")
    hooked = gateway.call(
        "POST", "/projects/p/webhooks", json={"kind": "slack", "url": receiver.url}
    )
    assert hooked.status_code == 201, hooked.text
    changed = gateway.call(
        "PATCH",
        "/projects/p/drift",
        json={
            "turns_without_checkpoint": 3,
            "context_fill_percent": 50,
            "reinject_after_turns": None,
        },
    )
    assert changed.status_code == 200, changed.text
    task = create_task(gateway, "p", task_yaml(), agent="drifter")
    hook(gateway, key, "SessionStart", "s-d", source="startup")
    upstream.fake.default = FakeReply(input_tokens=150_000, output_tokens=10)
    client = sdk(gateway, key, session="s-d")
    for _ in range(5):
        client.messages.create(
            model="claude-sonnet-5", max_tokens=50, messages=[{"role": "user", "content": "x"}]
        )
    answer = hook(gateway, key, "PostToolBatch", "s-d")
    context = answer["hookSpecificOutput"]["additionalContext"]
    assert "REMINDER:" in context and "Write a checkpoint now" in context
    assert "turns since the last checkpoint" in context and "75% full" in context
    assert hook(gateway, key, "PostToolBatch", "s-d") == {}, "reminded once"

    events = gateway.call("GET", "/audit", params={"session": "s-d"}).json()
    kinds = sorted(e["action"] for e in events if e["action"].startswith("drift:"))
    assert kinds == ["drift:context_fill", "drift:turns_without_checkpoint"]
    deadline = time.monotonic() + 30
    while len(receiver.deliveries) < 2:
        assert time.monotonic() < deadline, "no drift alert"
        time.sleep(0.05)
    texts = [json.loads(d.body)["text"] for d in receiver.deliveries]
    assert all("drift warning for agent drifter" in t for t in texts)

    written = agent_call(
        gateway, key, "POST", f"/v1/tasks/{task['id']}/checkpoints", json={"done": "half"}
    )
    assert written.status_code == 201
    context = hook(gateway, key, "SessionStart", "s-d", source="compact")["hookSpecificOutput"][
        "additionalContext"
    ]
    assert "REMINDER" not in context and "Done: half" in context
    assert len(receiver.deliveries) == 2
