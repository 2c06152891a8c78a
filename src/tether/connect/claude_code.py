"""Claude Code settings that send an agent through tether, merged into settings it already has.

tether owns a few keys (``apiKeyHelper``, ``env.ANTHROPIC_BASE_URL``, ``env.TETHER_KEY``,
``env.TETHER_URL``, its own hook entries, its MCP server); everything else in the file is
kept as it is, and running the merge twice changes nothing the second time.
"""

from __future__ import annotations

import copy
import difflib
import json
import shlex
from dataclasses import dataclass
from typing import Any

__all__ = [
    "HOOK_PATH",
    "HTTP_HOOK_EVENTS",
    "TetherConnection",
    "merge_mcp_servers",
    "merge_settings",
    "settings_diff",
    "tether_hook_entries",
]

HOOK_PATH = "/hooks/claude-code"
HTTP_HOOK_EVENTS = ("PreToolUse", "PostToolUse", "PostToolUseFailure", "PostToolBatch", "Stop")
"""Events sent to tether's hook endpoint; PreToolUse blocks when tether cannot be reached."""
TOOL_EVENTS = ("PreToolUse", "PostToolUse", "PostToolUseFailure")
MCP_SERVER_NAME = "tether"


@dataclass(frozen=True, slots=True)
class TetherConnection:
    """Where tether is and how this agent proves who it is."""

    url: str
    key_file: str | None
    """Read by ``apiKeyHelper``; None (managed settings) reads ``$TETHER_KEY`` instead."""
    key: str | None
    """The key for the hooks' header (``env.TETHER_KEY``); None leaves ``$TETHER_KEY`` to
    the machine's environment (managed settings for a fleet)."""
    tether_command: str
    """How the SessionStart command hook runs ``tether hook session-start``."""


def _is_tethers(hook: dict[str, Any], url: str) -> bool:
    if hook.get("type") == "http":
        return str(hook.get("url", "")).endswith(HOOK_PATH) and str(hook["url"]).startswith(url)
    return hook.get("type") == "command" and "hook session-start" in str(hook.get("command", ""))


def tether_hook_entries(connection: TetherConnection) -> dict[str, list[dict[str, Any]]]:
    """The hook matchers tether adds, by event."""

    def http(event: str) -> dict[str, Any]:
        hook: dict[str, Any] = {
            "type": "http",
            "url": f"{connection.url}{HOOK_PATH}",
            "timeout": 10,
            "headers": {"Authorization": "Bearer $TETHER_KEY"},
            "allowedEnvVars": ["TETHER_KEY"],
        }
        if event == "PreToolUse":
            hook["onFailure"] = "block"
        return {"matcher": "*", "hooks": [hook]} if event in TOOL_EVENTS else {"hooks": [hook]}

    entries = {event: [http(event)] for event in HTTP_HOOK_EVENTS}
    start = f"{connection.tether_command} hook session-start"
    entries["SessionStart"] = [{"hooks": [{"type": "command", "command": start, "timeout": 30}]}]
    return entries


def _without_tethers(matchers: list[Any], url: str) -> list[Any]:
    kept = []
    for matcher in matchers:
        if not isinstance(matcher, dict) or not isinstance(matcher.get("hooks"), list):
            kept.append(matcher)
            continue
        hooks = [h for h in matcher["hooks"] if not (isinstance(h, dict) and _is_tethers(h, url))]
        if hooks:
            kept.append({**matcher, "hooks": hooks})
    return kept


def merge_settings(existing: dict[str, Any], connection: TetherConnection) -> dict[str, Any]:
    """``existing`` with tether's settings in place of any earlier ones of tether's."""
    merged = copy.deepcopy(existing)
    merged["apiKeyHelper"] = (
        f"cat {shlex.quote(connection.key_file)}"
        if connection.key_file
        else 'printf %s "$TETHER_KEY"'
    )
    env: dict[str, Any] = merged["env"] if isinstance(merged.get("env"), dict) else {}
    env = {k: v for k, v in env.items() if k not in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN")}
    env["ANTHROPIC_BASE_URL"] = connection.url
    env["TETHER_URL"] = connection.url
    if connection.key is not None:
        env["TETHER_KEY"] = connection.key
    merged["env"] = env
    hooks: dict[str, Any] = merged["hooks"] if isinstance(merged.get("hooks"), dict) else {}
    hooks = {event: _without_tethers(list(m), connection.url) for event, m in hooks.items()}
    for event, entries in tether_hook_entries(connection).items():
        hooks[event] = [*hooks.get(event, []), *entries]
    merged["hooks"] = {event: matchers for event, matchers in hooks.items() if matchers}
    enabled = merged.get("enabledMcpjsonServers")
    enabled = list(enabled) if isinstance(enabled, list) else []
    if MCP_SERVER_NAME not in enabled:
        enabled.append(MCP_SERVER_NAME)
    merged["enabledMcpjsonServers"] = enabled
    return merged


def merge_mcp_servers(existing: dict[str, Any], connection: TetherConnection) -> dict[str, Any]:
    """An ``.mcp.json`` with tether's own MCP server (the task tools) added, the key read
    from the environment (``${TETHER_KEY}``), never written into the file."""
    merged = copy.deepcopy(existing)
    found = merged.get("mcpServers")
    servers: dict[str, Any] = found if isinstance(found, dict) else {}
    servers[MCP_SERVER_NAME] = {
        "type": "http",
        "url": f"{connection.url}/mcp",
        "headers": {"Authorization": "Bearer ${TETHER_KEY}"},
    }
    merged["mcpServers"] = servers
    return merged


def render(settings: dict[str, Any]) -> str:
    return json.dumps(settings, indent=2) + "\n"


def settings_diff(path: str, before: str, after: str, secret: str | None) -> str:
    """A unified diff of a settings file, with the agent key shown as ``tth_…``."""
    if secret:
        before, after = before.replace(secret, "tth_…"), after.replace(secret, "tth_…")
    lines = difflib.unified_diff(
        before.splitlines(keepends=True),
        after.splitlines(keepends=True),
        fromfile=f"{path} (now)",
        tofile=f"{path} (tether)",
    )
    return "".join(lines)
