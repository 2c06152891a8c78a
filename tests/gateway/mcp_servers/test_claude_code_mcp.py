"""The real Claude Code CLI with an ``--mcp-config`` that names only tether's URL and the
agent's tether key: the scripted model asks for ``mcp__wh__TOOL`` and tether's answer is
what the model reads back as the tool's result."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from tests.gateway.mcp_servers.conftest import register
from tests.support.claude_code import ClaudeCode
from tests.support.fake_upstream import RunningFake
from tests.support.mcp_upstream import start_mcp_upstream
from tests.support.server import RunningTether
from tether.fakes.anthropic import FakeReply


def _tool_results(upstream: RunningFake) -> list[dict[str, Any]]:
    """Each tool result the model was sent, once, in order."""
    seen: dict[str, dict[str, Any]] = {}
    for request in upstream.fake.received:
        if request.path != "/v1/messages":
            continue
        for message in request.body.get("messages", []):
            content = message.get("content")
            for block in content if isinstance(content, list) else []:
                if block.get("type") == "tool_result":
                    seen.setdefault(block["tool_use_id"], block)
    return list(seen.values())


def _text(block: dict[str, Any]) -> str:
    content = block.get("content")
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content or [])


def _approve_when_asked(tether: RunningTether, stop: threading.Event) -> None:
    while not stop.wait(0.1):
        for approval in tether.call("GET", "/approvals", params={"state": "pending"}).json():
            tether.call("POST", f"/approvals/{approval['id']}/approve", json={})


def test_claude_code_reaches_the_warehouse_only_through_tether(
    gateway: RunningTether, upstream: RunningFake, tmp_path: Path
) -> None:
    warehouse = start_mcp_upstream()
    approver_stop = threading.Event()
    try:
        key = register(gateway, warehouse, project="q")
        stored = gateway.call(
            "PUT", "/projects/q/credentials/anthropic", json={"secret": upstream.fake.api_key}
        )
        assert stored.status_code == 200, stored.text
        config = {
            "mcpServers": {
                "wh": {
                    "type": "http",
                    "url": f"{gateway.url}/mcp/servers/wh",
                    "headers": {"Authorization": f"Bearer {key}"},
                }
            }
        }
        config_file = tmp_path / "mcp.json"
        config_file.write_text(json.dumps(config))
        assert warehouse.token not in config_file.read_text()

        def ask(tool: str, delay: float = 0.0, **tool_input: Any) -> FakeReply:
            return FakeReply(
                kind="tool_use", tool_name=f"mcp__wh__{tool}", tool_input=tool_input, delay=delay
            )

        upstream.fake.enqueue(
            ask("query_db", table="readonly_orders"),
            ask("query_db", table="payroll"),
            ask("drop_table", table="scratch"),
            ask("drop_table", delay=2.0, table="scratch"),
            FakeReply(text="All done."),
        )
        approver = threading.Thread(
            target=_approve_when_asked, args=(gateway, approver_stop), daemon=True
        )
        workdir = tmp_path / "repo"
        workdir.mkdir()
        claude = ClaudeCode(gateway, key, workdir, args=["--mcp-config", str(config_file)])
        process, session_id = claude.start("tidy the warehouse")
        approver.start()
        run = claude.finish(process, session_id, time.monotonic())
        assert run.returncode == 0, (run.output, run.stderr[-2000:])
        results = [_text(block) for block in _tool_results(upstream)]
        assert len(results) == 4, results
        assert "3 rows from readonly_orders" in results[0]
        assert "tether refused this call: no policy permits mcp:query_db" in results[1]
        assert "annotated destructive" in results[2] and "approval" in results[2]
        assert "dropped scratch" in results[3], results[3]
        assert warehouse.calls == ["query_db:readonly_orders", "drop_table:scratch"]
        events = gateway.call("GET", "/audit", params={"limit": 1000, "action": "mcp:"}).json()
        decided = [e for e in events if e["action"] != "mcp:relay"]
        assert {e["session_id"] for e in decided} == {run.session_id}
        relayed = {
            e["attributes"]["mcp_method"]: e["session_id"]
            for e in events
            if e["action"] == "mcp:relay"
        }
        assert relayed["initialize"] in (None, run.session_id), "no session made for it"
    finally:
        approver_stop.set()
        warehouse.stop()


def test_claude_code_looping_on_an_mcp_tool_is_stopped_after_five_calls(
    gateway: RunningTether, upstream: RunningFake, tmp_path: Path
) -> None:
    warehouse = start_mcp_upstream()
    try:
        key = register(gateway, warehouse, project="q")
        gateway.call(
            "PUT", "/projects/q/credentials/anthropic", json={"secret": upstream.fake.api_key}
        )
        config_file = tmp_path / "mcp.json"
        config_file.write_text(
            json.dumps(
                {
                    "mcpServers": {
                        "wh": {
                            "type": "http",
                            "url": f"{gateway.url}/mcp/servers/wh",
                            "headers": {"Authorization": f"Bearer {key}"},
                        }
                    }
                }
            )
        )
        upstream.fake.default = FakeReply(
            kind="tool_use", tool_name="mcp__wh__echo", tool_input={"text": "again"}
        )
        workdir = tmp_path / "repo"
        workdir.mkdir()
        claude = ClaudeCode(gateway, key, workdir, args=["--mcp-config", str(config_file)])
        run = claude.run("keep trying", max_turns=20)
        assert warehouse.calls.count("echo:again") == 5, warehouse.calls
        assert "same result 5 times" in run.result or any(
            "same result 5 times" in _text(b) for b in _tool_results(upstream)
        ), run.result
    finally:
        warehouse.stop()
