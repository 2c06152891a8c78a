"""``tether mcp add|list|show|accept|remove`` on both stores, and the upstream token kept
where it belongs: sealed in the database, sent only to the MCP server, never written in
plain text by tether (database, logs, audit trail, API answers)."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest

from tests.gateway.mcp_servers.client import mcp_session, text_of
from tests.gateway.mcp_servers.conftest import POLICY, database_text
from tests.support.mcp_upstream import RunningMcpUpstream, start_mcp_upstream
from tests.support.server import RunningTether


def test_registry_commands_and_the_token_kept_out_of_everything_tether_writes(
    cli,  # type: ignore[no-untyped-def]
    tether_any: RunningTether,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    upstream: RunningMcpUpstream = start_mcp_upstream()
    try:
        tether_any.create_project("p", policy=POLICY)
        key = tether_any.create_agent("bot", "p")
        added = cli("mcp", "add", "p", "wh", "--url", upstream.url, "--json", stdin=upstream.token)
        assert added.exit_code == 0, added.output
        shown = json.loads(added.output)
        assert shown["agent_url"].endswith("/mcp/servers/wh") and shown["auth"] == "bearer"
        again = cli("mcp", "add", "p", "wh", "--url", upstream.url, stdin=upstream.token)
        assert again.exit_code == 1 and "already has an MCP server named wh" in again.output
        bad = cli("mcp", "add", "p", "other", "--url", upstream.url, "--auth", "headers", stdin="x")
        assert bad.exit_code == 1 and "JSON object" in bad.output

        agent_config = {
            "mcpServers": {
                "wh": {
                    "type": "http",
                    "url": shown["agent_url"],
                    "headers": {"Authorization": f"Bearer {key}"},
                }
            }
        }

        async def use() -> str:
            async with mcp_session(shown["agent_url"], key) as session:
                await session.list_tools()
                result = await session.call_tool("query_db", {"table": "readonly_orders"})
                return text_of(result)

        assert asyncio.run(use()) == "3 rows from readonly_orders"
        listed = cli("mcp", "list", "p", "--json")
        assert [s["name"] for s in json.loads(listed.output)] == ["wh"]
        show = cli("mcp", "show", "p", "wh", "--json")
        tools = {t["name"]: t for t in json.loads(show.output)["tools"]}
        assert tools["drop_table"]["destructive"] and tools["echo"]["state"] == "pinned"
        accepted = cli("mcp", "accept", "p", "wh", "--json")
        assert accepted.exit_code == 0 and json.loads(accepted.output)["withheld"] == []

        audit = tether_any.call("GET", "/audit", params={"limit": 1000}).text
        assert "mcp:query_db" in audit
        written = [
            ("the agent's MCP config", json.dumps(agent_config).encode()),
            ("the CLI's output", (added.output + listed.output + show.output).encode()),
            ("the audit trail", audit.encode()),
            ("the database", database_text(tether_any, tmp_path)),
            ("the logs", caplog.text.encode()),
        ]
        for where, data in written:
            assert upstream.token.encode() not in data, f"the upstream token is in {where}"
        assert f"Bearer {upstream.token}" in upstream.authorizations

        removed = cli("mcp", "remove", "p", "wh", "--json")
        assert removed.exit_code == 0, removed.output
        assert cli("mcp", "show", "p", "wh").exit_code == 1
    finally:
        upstream.stop()
