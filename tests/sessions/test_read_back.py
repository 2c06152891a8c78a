"""A session's state read back from the store (another replica changed it) never undoes a
state this replica set while that read was under way: a kill here stands, whatever older
row the read brings back."""

from __future__ import annotations

import time

import httpx

from tests.guards.test_guards import ONLY_REPEAT
from tests.support.fake_upstream import RunningFake
from tests.support.server import RunningTether
from tests.support.tcp_proxy import CuttableProxy

SESSION = "read-back-5d1c2e0a"


def _call(tether: RunningTether, key: str, text: str) -> httpx.Response:
    return httpx.post(
        f"{tether.url}/v1/messages",
        json={"model": "claude-sonnet-5", "max_tokens": 20,
              "messages": [{"role": "user", "content": text}]},
        headers={"x-api-key": key, "anthropic-version": "2023-06-01",
                 "X-Claude-Code-Session-Id": SESSION},
        timeout=30,
    )  # fmt: skip


def test_a_kill_here_stands_when_an_older_read_of_the_session_comes_back(
    here_and_there: tuple[RunningTether, RunningTether, CuttableProxy], upstream: RunningFake
) -> None:
    here, there, proxy = here_and_there
    here.create_project("p", upstream.fake.api_key)
    key = here.create_agent("a", "p")
    here.set_guards("p", **ONLY_REPEAT)
    assert [_call(here, key, "loop").status_code for _ in range(3)] == [200, 200, 423]
    time.sleep(2.5)  # the calls' activity is flushed: the session's next query is ours

    proxy.hold_reply_to(SESSION.encode(), 3.0)
    resumed = there.call("POST", f"/sessions/{SESSION}/resume", json={"reason": "looked"})
    assert resumed.status_code == 200, resumed.text
    assert proxy.fault_taken.wait(10), "here never read the resumed session back"

    killed = here.call("POST", f"/sessions/{SESSION}/kill", json={"reason": "runaway"})
    assert killed.status_code == 200, killed.text
    proxy.hold_reply_to(SESSION.encode(), 5.0)  # the next read back waits: what does here hold?
    assert proxy.fault_taken.wait(10), "here never read the session back again"

    refused = _call(here, key, "something new")
    assert refused.status_code == 423, refused.text
    assert f"session {SESSION} was terminated" in refused.json()["error"]["message"]
