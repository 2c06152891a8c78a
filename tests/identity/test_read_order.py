"""A project read back from the store after another replica changed it never undoes a
change this replica made while that read was under way: the guards set here stand,
whatever older row the feed's read brings back."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.guards.test_guards import ONLY_REPEAT, QUIET
from tests.support.fake_upstream import RunningFake
from tests.support.server import RunningTether
from tests.support.tcp_proxy import CuttableProxy

OLDER_READ_HELD = 5.0
OWN_WRITES = 1.5
"""Seconds for here's guard change to write and read the project back (milliseconds
unloaded), well inside ``OLDER_READ_HELD``."""


def _call(tether: RunningTether, key: str) -> int:
    return httpx.post(
        f"{tether.url}/v1/messages",
        json={"model": "claude-sonnet-5", "max_tokens": 20,
              "messages": [{"role": "user", "content": "the same again"}]},
        headers={"x-api-key": key, "anthropic-version": "2023-06-01",
                 "X-Claude-Code-Session-Id": "read-order-7a0c41d2"},
        timeout=30,
    ).status_code  # fmt: skip


def test_guards_set_here_stand_when_an_older_read_of_the_project_comes_back(
    here_and_there: tuple[RunningTether, RunningTether, CuttableProxy], upstream: RunningFake
) -> None:
    """Here's feed reads the project there changed; the reply is held. Meanwhile here sets
    the guards, reads the project itself (fresh) and waits to catch up with the feed. The
    held, older reply comes back; the feed then reads here's change, and that reply is held
    too. What does here enforce in between?"""
    here, there, proxy = here_and_there
    project_id = here.create_project("p", upstream.fake.api_key)["id"]
    key = here.create_agent("a", "p")
    here.set_guards("p", **QUIET)

    proxy.hold_reply_to(project_id.encode(), OLDER_READ_HELD)
    there.set_guards("p", **{**QUIET, "max_retries": 50})
    assert proxy.fault_taken.wait(10), "here never read the project there changed"
    older_read_back_at = time.monotonic() + OLDER_READ_HELD

    with ThreadPoolExecutor(1) as pool:
        setting = pool.submit(here.set_guards, "p", **ONLY_REPEAT)
        time.sleep(OWN_WRITES)  # its update and its own read of the project, not held
        proxy.hold_reply_to(project_id.encode(), 8.0)
        assert proxy.fault_taken.wait(15), "here never read its own change from the feed"
        assert time.monotonic() >= older_read_back_at - 0.5, (
            "the held read was here's own write, not the feed's read after the older reply"
        )
        assert not setting.done(), "the change returned before here caught up with the feed"

        assert [_call(here, key) for _ in range(3)] == [200, 200, 423]
        setting.result(30)
