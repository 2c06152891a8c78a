"""An MCP server behind OAuth client credentials: tether asks the token endpoint for an
access token, reuses it, refreshes it shortly before it expires and once after the server
answered 401, keeps the client secret and the tokens out of everything it writes, and fails
the call closed, with a reason naming no secret, when no token can be had."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.gateway.mcp_servers.client import mcp_session, text_of
from tests.gateway.mcp_servers.conftest import POLICY, database_text
from tests.support.mcp_upstream import RunningMcpUpstream, start_mcp_upstream
from tests.support.oauth_endpoint import FakeTokenEndpoint, start_token_endpoint
from tests.support.server import RunningTether

LIFETIME = 3.0
"""Seconds an access token lives; tether refreshes it a fifth of that before it expires."""


@pytest.fixture
def endpoint() -> Iterator[FakeTokenEndpoint]:
    running = start_token_endpoint(LIFETIME)
    yield running
    running.stop()


@pytest.fixture
def warehouse(endpoint: FakeTokenEndpoint) -> Iterator[RunningMcpUpstream]:
    """The warehouse MCP server, taking only unexpired tokens the endpoint issued."""
    running = start_mcp_upstream(accepts=endpoint.valid)
    yield running
    running.stop()


def test_the_token_is_cached_refreshed_before_expiry_and_after_a_401(
    cli,  # type: ignore[no-untyped-def]
    tether_any: RunningTether,
    endpoint: FakeTokenEndpoint,
    warehouse: RunningMcpUpstream,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    tether_any.create_project("p", policy=POLICY)
    key = tether_any.create_agent("bot", "p")
    credential = endpoint.credential(scope="warehouse.read", audience="warehouse")
    added = cli(
        "mcp", "add", "p", "wh", "--url", warehouse.url, "--auth", "oauth", "--json",
        stdin=credential,
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert json.loads(added.output)["auth"] == "oauth"
    bad = cli("mcp", "add", "p", "other", "--url", warehouse.url, "--auth", "oauth", stdin="{}")
    assert bad.exit_code == 1 and "token_url" in bad.output
    url = f"{tether_any.url}/mcp/servers/wh"
    counts: list[tuple[int, int]] = []

    async def scenario() -> list[str]:
        answers = []
        async with mcp_session(url, key) as session:
            await session.list_tools()
            for text in ("one", "two"):
                answers.append(text_of(await session.call_tool("echo", {"text": text})))
            counts.append((endpoint.requests, len(endpoint.refused)))
            first_expiry = min(endpoint.issued.values())
            await asyncio.sleep(max(0.0, first_expiry - time.monotonic() - LIFETIME / 5 + 0.2))
            answers.append(text_of(await session.call_tool("echo", {"text": "three"})))
            counts.append((endpoint.requests, len(endpoint.refused)))
            endpoint.revoke_all()
            answers.append(text_of(await session.call_tool("echo", {"text": "four"})))
            counts.append((endpoint.requests, len(endpoint.refused)))
        return answers

    assert asyncio.run(scenario()) == ["one", "two", "three", "four"]
    assert counts == [(1, 0), (2, 0), (3, 1)], "(token requests, upstream 401s)"
    assert endpoint.forms[0] == {
        "grant_type": "client_credentials",
        "scope": "warehouse.read",
        "audience": "warehouse",
    }
    assert warehouse.calls == ["echo:one", "echo:two", "echo:three", "echo:four"]
    assert all(a.startswith("Bearer access-") for a in warehouse.authorizations)

    audit = tether_any.call("GET", "/audit", params={"limit": 1000}).text
    shown = cli("mcp", "show", "p", "wh", "--json").output
    tokens = {a.removeprefix("Bearer ") for a in warehouse.authorizations}
    written = {
        "the CLI's output": (added.output + shown).encode(),
        "the audit trail": audit.encode(),
        "the database": database_text(tether_any, tmp_path),
        "the logs": caplog.text.encode(),
    }
    for where, data in written.items():
        assert endpoint.client_secret.encode() not in data, f"the client secret is in {where}"
        for token in tokens:
            assert token.encode() not in data, f"an access token is in {where}"


def _call(tether: RunningTether, key: str) -> httpx.Response:
    message = {
        "jsonrpc": "2.0",
        "id": 9,
        "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "x"}},
    }
    headers = {"Authorization": f"Bearer {key}", "Accept": "application/json, text/event-stream"}
    return httpx.post(f"{tether.url}/mcp/servers/wh", json=message, headers=headers, timeout=30)


def test_no_token_fails_the_call_closed_naming_no_secret(
    tether: RunningTether, endpoint: FakeTokenEndpoint, warehouse: RunningMcpUpstream
) -> None:
    tether.create_project("p", policy=POLICY)
    tether.set_guards("p", breaker_failures=None)
    key = tether.create_agent("bot", "p")
    server = {"name": "wh", "url": warehouse.url, "auth": "oauth"}
    added = tether.call(
        "POST", "/projects/p/mcp-servers", json={**server, "credential": endpoint.credential()}
    )
    assert added.status_code == 201, added.text

    async def listed() -> set[str]:
        async with mcp_session(f"{tether.url}/mcp/servers/wh", key) as session:
            return {tool.name for tool in (await session.list_tools()).tools}

    assert "echo" in asyncio.run(listed())
    endpoint.refuse_clients = True
    endpoint.revoke_all()
    refused = _call(tether, key)
    endpoint.stop()
    down = _call(tether, key)

    errors: list[dict[str, Any]] = [refused.json()["error"], down.json()["error"]]
    assert (refused.status_code, down.status_code) == (502, 502)
    assert "refused the client credentials: HTTP 401 (invalid_client)" in errors[0]["message"]
    assert "could not be reached" in errors[1]["message"]
    for error in errors:
        assert error["message"].startswith("MCP server wh: the OAuth token endpoint")
        assert endpoint.client_secret not in json.dumps(error)
        assert endpoint.client_id not in json.dumps(error)
    assert "echo:x" not in warehouse.calls
    assert endpoint.requests == 2, "a refused token request is not retried in a loop"
    events = tether.call("GET", "/audit", params={"limit": 1000, "action": "mcp:echo"}).json()
    assert endpoint.client_secret not in json.dumps(events)
