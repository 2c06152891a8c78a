"""Budget alerts at 50/80/100 % to real local webhooks: Slack shape, HMAC signature,
once per crossing, retried while the receiver fails, and across a restart."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.databases import sqlite_url
from tests.support.fake_upstream import RunningFake
from tests.support.receiver import Receiver
from tests.support.server import RunningTether, start_tether
from tether.fakes.anthropic import FakeReply

SECRET = "generic-webhook-signing-secret"


def boot(tmp_path: Path, upstream: RunningFake) -> RunningTether:
    return start_tether(
        tmp_path / "data",
        sqlite_url(str(tmp_path)),
        anthropic_base_url=upstream.url,
        alert_retry_base_seconds=0.1,
    )


@pytest.fixture
def tether(tmp_path: Path, upstream: RunningFake) -> Iterator[RunningTether]:
    server = boot(tmp_path, upstream)
    server.create_project("p", upstream.fake.api_key)
    yield server
    server.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver().start()
    yield running
    running.stop()


def spend(tether: RunningTether, key: str, calls: int) -> None:
    for _ in range(calls):
        httpx.post(
            f"{tether.url}/v1/messages",
            json={
                "model": "claude-sonnet-5",
                "max_tokens": 1000,
                "messages": [{"role": "user", "content": "x"}],
            },
            headers={
                "x-api-key": key,
                "anthropic-version": "2023-06-01",
                "X-Claude-Code-Session-Id": "s",
            },
        )


def wait_for(predicate, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_thresholds_fire_once_each_to_slack_and_signed_generic_hooks(
    tether: RunningTether, upstream: RunningFake, receiver: Receiver
) -> None:
    key = tether.create_agent("claude-deploy-01", "p")
    # each call costs 1000 output tokens x $10/M = $0.01 (+ a few input tokens)
    upstream.fake.default = FakeReply(output_tokens=1000)
    assert (
        tether.call(
            "POST", "/projects/p/webhooks", json={"kind": "slack", "url": f"{receiver.url}/slack"}
        ).status_code
        == 201
    )
    assert (
        tether.call(
            "POST",
            "/projects/p/webhooks",
            json={"kind": "generic", "url": f"{receiver.url}/generic", "secret": SECRET},
        ).status_code
        == 201
    )
    tether.call("PUT", "/budgets", json={"project": "p", "period": "daily", "limit_usd": 0.1})

    spend(tether, key, 4)  # ~40 %: nothing yet
    time.sleep(0.5)
    assert receiver.deliveries == []
    spend(tether, key, 2)  # ~60 %: 50 % fires
    wait_for(lambda: len(receiver.deliveries) == 2)
    spend(tether, key, 3)  # ~90 %: 80 % fires
    wait_for(lambda: len(receiver.deliveries) == 4)
    spend(tether, key, 5)  # capped by the budget; 100 % fires once at most
    time.sleep(1.0)

    slack = [json.loads(d.body) for d in receiver.deliveries if d.path == "/slack"]
    generic = [d for d in receiver.deliveries if d.path == "/generic"]
    thresholds = [json.loads(d.body)["threshold_percent"] for d in generic]
    assert sorted(thresholds) in ([50, 80], [50, 80, 100])
    assert len(slack) == len(generic), "every crossing goes to every webhook"
    first = slack[0]
    assert "daily budget of project 'p'" in first["text"] and "50" in first["text"]
    assert first["blocks"][0]["type"] == "section"
    fields = {f["text"].split("\n")[0] for f in first["blocks"][1]["fields"]}
    assert fields == {"*Project*", "*Budget*", "*Spent*", "*Limit*"}
    details = first["blocks"][2]["text"]["text"]
    assert "session `s` (claude-deploy-01)" in details
    assert "• claude-deploy-01: $" in details
    for delivery in generic:
        expected = (
            "sha256="
            + hmac.new(
                SECRET.encode(),
                delivery.headers["X-Tether-Timestamp"].encode() + b"." + delivery.body,
                hashlib.sha256,
            ).hexdigest()
        )
        assert delivery.headers["X-Tether-Signature"] == expected
        payload = json.loads(delivery.body)
        assert payload["project"] == "p" and payload["limit_usd"] == 0.1
        assert payload["delivery_id"] == delivery.headers["X-Tether-Delivery"]
    ids = [d.headers["X-Tether-Delivery"] for d in receiver.deliveries]
    assert len(ids) == len(set(ids)), "no delivery was sent twice"


def test_a_failing_receiver_is_retried_until_it_accepts(
    tether: RunningTether, upstream: RunningFake
) -> None:
    flaky = Receiver(fail_first=3).start()
    try:
        key = tether.create_agent("a", "p")
        upstream.fake.default = FakeReply(output_tokens=1000)
        tether.call("POST", "/projects/p/webhooks", json={"kind": "slack", "url": flaky.url})
        tether.call(
            "PUT",
            "/budgets",
            json={"project": "p", "period": "daily", "limit_usd": 0.1, "thresholds": [50]},
        )
        spend(tether, key, 6)
        wait_for(lambda: len(flaky.deliveries) == 1)
        assert flaky.attempts == 4
        time.sleep(0.5)
        assert len(flaky.deliveries) == 1
    finally:
        flaky.stop()


def cross_a_threshold(tmp_path: Path, upstream: RunningFake, receiver: Receiver) -> RunningTether:
    """A tether whose project has just crossed a 50 % alert threshold, with ``receiver`` as
    its Slack webhook."""
    server = boot(tmp_path, upstream)
    server.create_project("p", upstream.fake.api_key)
    key = server.create_agent("a", "p")
    upstream.fake.default = FakeReply(output_tokens=1000)
    server.call("POST", "/projects/p/webhooks", json={"kind": "slack", "url": receiver.url})
    server.call(
        "PUT",
        "/budgets",
        json={"project": "p", "period": "daily", "limit_usd": 0.1, "thresholds": [50]},
    )
    spend(server, key, 6)
    return server


def test_queued_alerts_survive_a_restart(tmp_path: Path, upstream: RunningFake) -> None:
    receiver = Receiver(fail_first=10**6).start()
    try:
        server = cross_a_threshold(tmp_path, upstream, receiver)
        wait_for(lambda: receiver.attempts >= 2)
        server.stop()
        assert receiver.deliveries == []

        receiver.fail_first = 0
        server = boot(tmp_path, upstream)
        try:
            wait_for(lambda: len(receiver.deliveries) == 1)
            time.sleep(0.5)
            assert len(receiver.deliveries) == 1
        finally:
            server.stop()
    finally:
        receiver.stop()


def test_an_alert_cut_off_by_a_shutdown_is_sent_by_the_next_process_at_once(
    tmp_path: Path, upstream: RunningFake
) -> None:
    receiver = Receiver(hold_seconds=30).start()
    try:
        server = cross_a_threshold(tmp_path, upstream, receiver)
        wait_for(lambda: receiver.attempts >= 1)
        server.stop()
        assert receiver.deliveries == []

        receiver.hold_seconds = 0
        server = boot(tmp_path, upstream)
        try:
            wait_for(lambda: len(receiver.deliveries) == 1)
        finally:
            server.stop()
    finally:
        receiver.stop()
