"""The Claude Agent SDK through tether: what to pass to ``ClaudeAgentOptions``.

``ClaudeAgentOptions(**tether_agent_options("http://tether:8080", key))`` sends the SDK's
Claude Code through tether with the agent's key and tether's hooks (the SDK runs the same
CLI, so the settings are the same as ``tether connect claude-code`` writes)."""

from __future__ import annotations

import json
from typing import Any

from tether.connect.claude_code import HTTP_HOOK_EVENTS, TetherConnection, tether_hook_entries

__all__ = ["tether_agent_options"]


def tether_agent_options(url: str, key: str) -> dict[str, Any]:
    """``env`` and ``settings`` for ``ClaudeAgentOptions``: model calls to ``url`` with
    ``key``, every tool call decided by tether's hooks (blocking when tether is down)."""
    url = url.rstrip("/")
    connection = TetherConnection(url=url, key_file="", key=key, tether_command="tether")
    hooks = {
        event: entries
        for event, entries in tether_hook_entries(connection).items()
        if event in HTTP_HOOK_EVENTS
    }
    return {
        "env": {
            "ANTHROPIC_BASE_URL": url,
            "ANTHROPIC_API_KEY": key,
            "TETHER_KEY": key,
            "TETHER_URL": url,
        },
        "settings": json.dumps({"hooks": hooks}),
    }
