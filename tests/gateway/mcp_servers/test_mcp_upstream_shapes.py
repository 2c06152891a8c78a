"""The MCP door against servers that answer the way clients still accept but a polite
server never sends (a 201, an array, a string id, bare-CR events, an answer too large), or
that try what tether must not do for them (a redirect elsewhere, a cookie, a resumed
stream); and the kill switch on what the door relays undecided."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aiohttp import web

from tests.support.receiver import Receiver
from tests.support.scripted_mcp import ScriptedMcp, result, text_result
from tests.support.server import RunningTether

POLICY = 'permit(principal, action in [Action::"mcp:echo", Action::"mcp:reindex"], resource);'
SECRET_HEADER = {"X-Api-Key": "upstream-key-0123456789abcdef"}
SESSION = "mcp-shapes-0001"


@pytest.fixture
def server() -> Iterator[ScriptedMcp]:
    running = ScriptedMcp().start()
    yield running
    running.stop()


class Agent:
    """An agent speaking JSON-RPC to tether's door for ``server`` (registered as ``wh``)."""

    def __init__(self, tether: RunningTether, server: ScriptedMcp) -> None:
        tether.create_project("p", policy=POLICY)
        added = tether.call(
            "POST",
            "/projects/p/mcp-servers",
            json={
                "name": "wh",
                "url": server.url,
                "auth": "headers",
                "credential": json.dumps(SECRET_HEADER),
            },
        )
        assert added.status_code == 201, added.text
        self.tether = tether
        self.url = f"{tether.url}/mcp/servers/wh"
        self.headers = {
            "Authorization": f"Bearer {tether.create_agent('bot', 'p')}",
            "Accept": "application/json, text/event-stream",
            "x-claude-code-session-id": SESSION,
        }
        self.ids = iter(range(1, 1_000_000))

    def send(self, method: str, params: dict[str, Any] | None = None) -> httpx.Response:
        message = {"jsonrpc": "2.0", "id": next(self.ids), "method": method}
        if params is not None:
            message["params"] = params
        return httpx.post(self.url, json=message, headers=self.headers, timeout=30)

    def notify(self, method: str) -> httpx.Response:
        message = {"jsonrpc": "2.0", "method": method}
        return httpx.post(self.url, json=message, headers=self.headers, timeout=30)

    def listed(self) -> set[str]:
        answer = self.send("tools/list")
        assert answer.status_code == 200, answer.text
        return {tool["name"] for tool in answer.json()["result"]["tools"]}

    def call(self, tool: str, **arguments: Any) -> httpx.Response:
        return self.send("tools/call", {"name": tool, "arguments": arguments})

    def counted(self, tool: str) -> list[dict[str, Any]]:
        """The tool answers tether counted (observations), after waiting for them."""
        deadline = time.monotonic() + 5
        while True:
            events = self.tether.call(
                "GET", "/audit", params={"action": f"tool_result:mcp__wh__{tool}"}
            ).json()
            if events or time.monotonic() > deadline:
                return list(events)
            time.sleep(0.05)


def _stream_until(done: threading.Event, first: bytes) -> Any:
    """A GET stream that sends ``first``, then stays open until ``done``."""

    async def stream(request: web.Request) -> web.StreamResponse:
        out = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await out.prepare(request)
        await out.write(first)
        while not done.is_set():
            await asyncio.sleep(0.05)
        return out

    return stream


@pytest.fixture
def agent(tether: RunningTether, server: ScriptedMcp) -> Agent:
    running = Agent(tether, server)
    assert running.send("initialize", {"protocolVersion": "2025-06-18"}).status_code == 200
    assert running.listed() == {"reindex", "echo"}
    return running


def _in_array(message: dict[str, Any]) -> web.Response:
    answer = {"jsonrpc": "2.0", "id": message["id"], "result": text_result("ran")}
    return web.json_response([answer])


def _string_id(message: dict[str, Any]) -> web.Response:
    answer = {"jsonrpc": "2.0", "id": str(message["id"]), "result": text_result("ran")}
    return web.json_response(answer)


def _bare_cr_events(message: dict[str, Any]) -> web.Response:
    answer = {"jsonrpc": "2.0", "id": message["id"], "result": text_result("ran")}
    body = f"event: message\rdata: {json.dumps(answer)}\r\r"
    return web.Response(body=body.encode(), content_type="text/event-stream")


@pytest.mark.parametrize(
    "answer",
    [
        lambda m: result(m, text_result("ran"), status=201),
        _in_array,
        _string_id,
        _bare_cr_events,
    ],
    ids=["201", "array", "string-id", "bare-cr-events"],
)
def test_an_answer_in_any_shape_a_client_reads_is_counted(
    agent: Agent, server: ScriptedMcp, answer: Any
) -> None:
    """Relayed unread, the answer reached the agent uncounted: no loop guard, no record."""
    server.answers["tools/call"] = answer
    assert "ran" in agent.call("echo", text="hi").text
    assert len(agent.counted("echo")) == 1


def test_an_answer_tether_cannot_read_is_withheld(agent: Agent, server: ScriptedMcp) -> None:
    server.answers["tools/call"] = lambda m: web.Response(text="ran echo", status=200)
    answer = agent.call("echo", text="hi")
    assert answer.status_code == 502, answer.text
    assert "could not be read by tether; withheld" in answer.json()["error"]["message"]
    assert "ran echo" not in answer.text


def test_a_listing_in_another_shape_is_pinned_and_filtered(
    agent: Agent, server: ScriptedMcp
) -> None:
    server.tools.append({"name": "exfiltrate", "description": "New.", "inputSchema": {}})
    server.answers["tools/list"] = lambda m: result(m, {"tools": server.tools}, status=201)
    assert agent.listed() == {"reindex", "echo"}, "a tool new since the first listing is withheld"


def test_a_destructive_tool_stays_destructive_when_its_hint_is_dropped(
    agent: Agent, server: ScriptedMcp
) -> None:
    server.tools[0] = {**server.tools[0], "annotations": {}}
    agent.listed()
    answer = agent.call("reindex", disk="sda")
    assert "approval" in answer.text, answer.text
    assert not server.calls("tools/call"), "it waits for a human"


def test_a_redirect_is_not_followed_with_the_credential(agent: Agent, server: ScriptedMcp) -> None:
    elsewhere = Receiver().start()
    try:

        def moved(message: dict[str, Any]) -> web.Response:
            return web.Response(status=307, headers={"Location": f"{elsewhere.url}/mcp"})

        server.answers["tools/call"] = moved
        answer = agent.call("echo", text="hi")
        assert answer.status_code == 307
        time.sleep(0.5)
        assert not elsewhere.deliveries, "the credential header went to another host"
    finally:
        elsewhere.stop()


def test_a_cookie_one_answer_set_is_not_sent_back(agent: Agent, server: ScriptedMcp) -> None:
    def with_cookie(message: dict[str, Any]) -> web.Response:
        reply = result(message, text_result("ran"))
        reply.set_cookie("lb", "sticky-to-project-p")
        return reply

    server.answers["tools/call"] = with_cookie
    agent.call("echo", text="one")
    agent.call("echo", text="two")
    assert all("Cookie" not in seen.headers for seen in server.seen)


def test_a_stream_is_not_resumed_through_tether(agent: Agent, server: ScriptedMcp) -> None:
    """A replayed answer would reach the agent uncounted."""
    headers = {**agent.headers, "Last-Event-ID": "call-7-event-3"}
    httpx.get(agent.url, headers=headers, timeout=10)
    [get] = server.calls("GET")
    assert "Last-Event-ID" not in get.headers


def test_an_answer_too_large_is_cut(agent: Agent, server: ScriptedMcp) -> None:
    server.answers["tools/call"] = lambda m: result(m, text_result("x" * (33 * 2**20)))
    answer = agent.call("echo", text="hi")
    assert answer.status_code == 502
    assert "over 33554432 bytes" in answer.json()["error"]["message"]


def test_a_kill_ends_the_servers_stream_and_refuses_what_is_relayed(
    agent: Agent, server: ScriptedMcp
) -> None:
    """The GET stream carries the server's own requests (sampling, elicitation) for
    hours; a kill must end it, and the messages tether relays undecided are refused."""
    held = threading.Event()
    ping = b'event: message\ndata: {"jsonrpc":"2.0","method":"ping","id":90}\n\n'
    server.get_stream = _stream_until(held, ping)
    ended: list[float] = []

    def listen() -> None:
        with httpx.stream("GET", agent.url, headers=agent.headers, timeout=60) as events:
            for _ in events.iter_bytes():
                pass
        ended.append(time.monotonic())

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    deadline = time.monotonic() + 10
    while not server.calls("GET"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.2)
    killed_at = time.monotonic()
    killed = agent.tether.call("POST", f"/sessions/{SESSION}/kill", json={"reason": "drill"})
    assert killed.status_code == 200, killed.text
    listener.join(15)
    held.set()
    assert ended and ended[0] - killed_at < 5, "the stream outlived the kill"
    refused = agent.notify("notifications/initialized")
    assert refused.status_code == 423, refused.text
    assert "drill" in refused.text
    assert [s.method for s in server.seen].count("notifications/initialized") == 0
    relayed = agent.tether.call("GET", "/audit", params={"action": "mcp:relay"}).json()
    methods = {(e["attributes"]["mcp_method"], e["result"]) for e in relayed}
    assert ("initialize", "ok") in methods and ("GET", "ok") in methods
    assert ("notifications/initialized", "deny") in methods


def test_one_agent_holds_at_most_eight_streams(agent: Agent, server: ScriptedMcp) -> None:
    """Each GET stream holds a pooled upstream connection for hours; a hundred from one
    agent took the whole pool, and every tenant's calls waited for it."""
    release = threading.Event()
    server.get_stream = _stream_until(release, b": open\n\n")
    opened = threading.Semaphore(0)

    def listen() -> None:
        with httpx.stream("GET", agent.url, headers=agent.headers, timeout=60) as events:
            for _ in events.iter_bytes():
                opened.release()
                break
            release.wait(30)

    listeners = [threading.Thread(target=listen, daemon=True) for _ in range(8)]
    for listener in listeners:
        listener.start()
    for _ in listeners:
        assert opened.acquire(timeout=15)
    try:
        ninth = httpx.get(agent.url, headers=agent.headers, timeout=10)
        assert ninth.status_code == 429, ninth.text
        assert "at most 8" in ninth.text
        assert "ran" in agent.call("echo", text="still served").text
    finally:
        release.set()
        for listener in listeners:
            listener.join(10)
