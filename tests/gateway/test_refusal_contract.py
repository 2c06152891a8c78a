"""Tether's refusals against Claude Code's gateway contract and the ``anthropic`` SDK's
retry rules (#23): a refusal that cannot succeed on a retry is sent once (the SDK's
default ``max_retries=2`` retries nothing), says why, and never reaches upstream; the
breaker's 429 is retried after its ``retry-after``, which is whole seconds and at most 60
wherever tether sets or relays it."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

import anthropic
import httpx
import httpx2
import pytest

from tests.support.fake_upstream import RunningFake
from tests.support.server import PERMIT_ALL, RunningTether
from tests.support.streams import MODEL
from tether.fakes.anthropic import FakeReply

OPUS = "claude-opus-5-5"


@dataclass
class Refusal:
    status: int
    code: str
    reason: str
    """Part of tether's message the SDK's exception must show."""
    model: str = MODEL


def counting_sdk(tether: RunningTether, key: str, session: str) -> tuple[anthropic.Anthropic, list]:
    """An SDK client with its default retries, and the list of requests it sends."""
    sent: list[httpx2.Request] = []
    client = anthropic.Anthropic(
        base_url=tether.url,
        api_key=key,
        default_headers={"X-Claude-Code-Session-Id": session},
        http_client=httpx2.Client(event_hooks={"request": [sent.append]}),
    )
    return client, sent


def raw_call(tether: RunningTether, key: str, session: str) -> httpx.Response:
    return httpx.post(
        f"{tether.url}/v1/messages",
        json={"model": MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]},
        headers={
            "x-api-key": key,
            "anthropic-version": "2023-06-01",
            "X-Claude-Code-Session-Id": session,
        },
        timeout=30,
    )


def arrange(gateway: RunningTether, case: str, key: str, session: str) -> tuple[str, Refusal]:
    """Puts the agent holding ``key`` in ``case``'s situation; the key it then uses and
    the refusal it must get."""
    if case == "bad key":
        return "tth_not-a-key", Refusal(401, "invalid_key", "the agent key is not valid")
    if case == "rotated key":
        rotated = gateway.call("POST", "/agents/cc/keys/rotate", json={"grace_seconds": 0})
        assert rotated.status_code in (200, 201), rotated.text
        return key, Refusal(401, "expired_key", "it was rotated")
    if case == "budget":
        budget = {"project": "p", "period": "session", "limit_usd": 0.000001}
        assert gateway.call("PUT", "/budgets", json=budget).status_code == 200
        return key, Refusal(402, "budget_exceeded", "per-session budget of project 'p'")
    if case == "policy":
        gateway.apply_policy(
            "p",
            PERMIT_ALL + '@reason("no Opus for agents")\n'
            'forbid(principal, action in Action::"model", resource)\n'
            'when { resource.arn like "anthropic:model/claude-opus*" };\n',
        )
        return key, Refusal(403, "policy_denied", "no Opus for agents", OPUS)
    if case == "kill":
        killed = gateway.call("POST", f"/sessions/{session}/kill", json={"reason": "runaway"})
        assert killed.status_code == 200, killed.text
        return key, Refusal(423, "session_terminated", "runaway")
    assert case == "pause"
    paused = gateway.call("POST", "/projects/p/pause", json={"reason": "incident 7"})
    assert paused.status_code == 200, paused.text
    return key, Refusal(423, "project_paused", "incident 7")


CASES = ["bad key", "rotated key", "budget", "policy", "kill", "pause"]


@pytest.mark.parametrize(
    ("case", "operation"),
    [(case, "messages") for case in CASES]
    # Counting tokens is free: a budget does not refuse it.
    + [(case, "count_tokens") for case in CASES if case != "budget"],
)
def test_a_refusal_is_sent_once_with_the_sdks_default_retries_and_says_why(
    gateway: RunningTether, upstream: RunningFake, case: str, operation: str
) -> None:
    key = gateway.create_agent("cc", "p")
    session = str(uuid.uuid4())
    assert raw_call(gateway, key, session).status_code == 200
    reached = len(upstream.fake.received)
    key, expected = arrange(gateway, case, key, session)
    client, sent = counting_sdk(gateway, key, session)
    messages: list[anthropic.types.MessageParam] = [{"role": "user", "content": "go on"}]
    with client, pytest.raises(anthropic.APIStatusError) as refused:
        if operation == "messages":
            client.messages.create(model=expected.model, max_tokens=4096, messages=messages)
        else:
            client.messages.count_tokens(model=expected.model, messages=messages)
    error = refused.value
    assert error.status_code == expected.status, error.message
    assert len(sent) == 1, f"the SDK retried a {expected.status}"
    assert error.response.headers["x-should-retry"] == "false"
    assert "retry-after" not in error.response.headers
    assert expected.reason in error.message, error.message
    body = error.body
    assert isinstance(body, dict) and body["error"]["code"] == expected.code
    assert len(upstream.fake.received) == reached, "a refusal reached upstream"


def open_breaker(gateway: RunningTether, upstream: RunningFake, key: str, cooldown: int) -> None:
    """One overloaded answer from upstream opens the project's breaker for ``cooldown``."""
    gateway.set_guards(
        "p",
        breaker_failures=1,
        breaker_cooldown_seconds=cooldown,
        breaker_max_cooldown_seconds=max(cooldown, 600),
    )
    upstream.fake.enqueue(FakeReply(kind="error", status=529, error_type="overloaded_error"))
    assert raw_call(gateway, key, "opener").status_code == 529
    deadline = 50
    while deadline and raw_call(gateway, key, "probe").status_code != 429:
        deadline -= 1
    assert deadline, "the breaker did not open"


def test_the_breakers_429_is_retried_by_the_sdk_after_its_retry_after(
    gateway: RunningTether, upstream: RunningFake
) -> None:
    key = gateway.create_agent("cc", "p")
    open_breaker(gateway, upstream, key, cooldown=1)
    reached = len(upstream.fake.received)
    client, sent = counting_sdk(gateway, key, "patient")
    with client:
        answer = client.messages.create(
            model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    assert answer.content, answer
    assert len(sent) >= 2, "the SDK did not retry the breaker's 429"
    assert len(upstream.fake.received) == reached + 1


def test_the_breakers_retry_after_is_whole_seconds_and_at_most_60(
    gateway: RunningTether, upstream: RunningFake
) -> None:
    key = gateway.create_agent("cc", "p")
    open_breaker(gateway, upstream, key, cooldown=300)
    refused = raw_call(gateway, key, "impatient")
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "60", "over 60 s makes Claude Code give up"
    assert "x-should-retry" not in refused.headers
    waits = re.search(r"for (\d+) s more", refused.json()["error"]["message"])
    assert waits is not None and 290 <= int(waits.group(1)) <= 300, refused.text


@pytest.mark.parametrize(
    ("upstream_headers", "relayed"),
    [
        ({"retry-after": "120"}, "60"),
        ({"retry-after": "1.5"}, "2"),
        ({"retry-after": "0"}, "1"),
        ({"retry-after": "7", "retry-after-ms": "90000"}, "60"),
        ({"retry-after-ms": "2500"}, "3"),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, "1"),
        ({"retry-after": "soon"}, None),
    ],
)
def test_upstreams_retry_after_is_relayed_as_whole_seconds_up_to_60(
    gateway: RunningTether,
    upstream: RunningFake,
    upstream_headers: dict[str, str],
    relayed: str | None,
) -> None:
    """Upstream's own 429 reaches the agent (the breaker is off) with its wait rewritten."""
    gateway.set_guards("p", breaker_failures=None)
    upstream.fake.enqueue(
        FakeReply(
            kind="error", status=429, error_type="rate_limit_error", error_headers=upstream_headers
        )
    )
    answer = raw_call(gateway, gateway.create_agent("cc", "p"), "s")
    assert answer.status_code == 429
    assert answer.headers.get("retry-after") == relayed
    assert "retry-after-ms" not in answer.headers
