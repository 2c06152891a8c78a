"""``TETHER_DRILL_EVERY``: scheduled drills are audited, and a failing one alerts the
project's webhook."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from tests.support.receiver import Receiver
from tests.support.server import RunningTether
from tether.config import Settings
from tether.readiness.schedule import DrillSchedule


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver().start()
    yield running
    running.stop()


def test_drill_every_is_a_duration() -> None:
    assert Settings.from_env({"TETHER_DRILL_EVERY": "7d"}).drill_every == 7 * 86400
    assert Settings.from_env({}).drill_every is None


def test_a_scheduled_drill_that_fails_alerts_the_project_webhook(
    gateway: RunningTether, receiver: Receiver
) -> None:
    added = gateway.call(
        "POST", "/projects/p/webhooks", json={"kind": "slack", "url": receiver.url}
    )
    assert added.status_code == 201, added.text
    gateway.create_agent("real", "p")
    gateway.apply_policy("p", "forbid(principal, action, resource);\n")
    schedule = DrillSchedule(gateway.runtime, 3600, gateway.url)
    reports = asyncio.run_coroutine_threadsafe(schedule.run_once(), gateway._loop).result(60)
    assert {r.drill for r in reports} == {"kill", "pause", "audit", "rotate"}
    assert not next(r for r in reports if r.drill == "kill").ok
    deadline = time.monotonic() + 30
    while not any(b"kill drill of project p failed" in d.body for d in receiver.deliveries):
        assert time.monotonic() < deadline, [d.body for d in receiver.deliveries]
        time.sleep(0.05)
    audited = gateway.call("GET", "/audit", params={"action": "drill:"}).json()
    assert {e["action"] for e in audited} == {
        "drill:kill",
        "drill:pause",
        "drill:audit",
        "drill:rotate",
    }
