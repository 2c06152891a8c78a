"""Claude Code tools to actions on resources: Bash commands are parsed for what they do,
file tools act on their resolved path, MCP tools on ``mcp://SERVER/TOOL``."""

from __future__ import annotations

from typing import Any

from tether.commands.model import CommandAction
from tether.commands.parse import actions_of
from tether.commands.paths import resolve
from tether.errors import BadRequest

__all__ = ["tool_actions"]

_FILE_TOOLS = {
    "Write": ("file:Write", "file_path"),
    "Edit": ("file:Write", "file_path"),
    "MultiEdit": ("file:Write", "file_path"),
    "NotebookEdit": ("file:Write", "notebook_path"),
    "Read": ("file:Read", "file_path"),
    "NotebookRead": ("file:Read", "notebook_path"),
    "Glob": ("file:Read", "path"),
    "Grep": ("file:Read", "path"),
    "LS": ("file:Read", "path"),
}


def _text(tool: str, tool_input: dict[str, Any], field: str) -> str:
    value = tool_input.get(field)
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{tool} hook input needs tool_input.{field} (a non-empty string)")
    return value


def tool_actions(tool: str, tool_input: dict[str, Any], cwd: str) -> list[CommandAction]:
    if tool == "Bash":
        return actions_of(_text(tool, tool_input, "command"), cwd)
    if tool in _FILE_TOOLS:
        action, field = _FILE_TOOLS[tool]
        optional = tool in ("Glob", "Grep", "LS")
        path = tool_input.get(field) if optional else _text(tool, tool_input, field)
        return [
            CommandAction(action, resolve(path if isinstance(path, str) and path else ".", cwd))
        ]
    if tool == "WebFetch":
        return [CommandAction("web:Fetch", _text(tool, tool_input, "url"))]
    if tool == "WebSearch":
        return [CommandAction("web:Search", "web:search")]
    if tool.startswith("mcp__"):
        _, server, name = [*tool.split("__", 2), "", ""][:3]
        return [CommandAction(f"mcp:{name or server}", f"mcp://{server}/{name}")]
    return [CommandAction(f"tool:{tool}", f"tool:{tool}")]
