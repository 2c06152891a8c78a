"""A session's state read back from the store (another replica changed it) never undoes a
state this replica set while that read was under way: a kill here stands, whatever older
row the read brings back."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.guards.test_guards import ONLY_REPEAT
from tests.support.fake_upstream import RunningFake
from tests.support.server import RunningTether
from tests.support.tcp_proxy import CuttableProxy

SESSION = "read-back-5d1c2e0a"


def _call(tether: RunningTether, key: str, text: str, session: str = SESSION) -> httpx.Response:
    return httpx.post(
        f"{tether.url}/v1/messages",
        json={"model": "claude-sonnet-5", "max_tokens": 20,
              "messages": [{"role": "user", "content": text}]},
        headers={"x-api-key": key, "anthropic-version": "2023-06-01",
                 "X-Claude-Code-Session-Id": session},
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


def test_a_kill_there_stands_when_it_arrives_while_here_first_reads_the_session(
    here_and_there: tuple[RunningTether, RunningTether, CuttableProxy], upstream: RunningFake
) -> None:
    """Here has not seen the session; its first read of it (the row it creates) comes back
    late, and the feed tells here of a kill there before it does: here does not keep the
    older row, so no call on the killed session goes through here."""
    here, there, proxy = here_and_there
    here.create_project("p", upstream.fake.api_key)
    key = here.create_agent("a", "p")
    session = "first-read-8b0f4c21"

    proxy.hold_reply_to(session.encode(), 3.0)
    with ThreadPoolExecutor(1) as pool:
        during = pool.submit(_call, here, key, "the first call here", session)
        assert proxy.fault_taken.wait(10), "here never read the session"
        deadline = time.monotonic() + 5
        while (killed := _kill(there, session)).status_code == 404:
            assert time.monotonic() < deadline, "here's row never landed"
            time.sleep(0.05)
        assert killed.status_code == 200, killed.text
        first = during.result(30)

    after = _call(here, key, "and the next", session)
    assert after.status_code == 423, after.text
    assert f"session {session} was terminated" in after.json()["error"]["message"]
    assert first.status_code == 423, "read again once the kill came in, before it went on"


def _kill(tether: RunningTether, session: str) -> httpx.Response:
    return tether.call("POST", f"/sessions/{session}/kill", json={"reason": "runaway"})
