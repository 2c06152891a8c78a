"""tether's refusals in MCP's terms. A refused ``tools/call`` is a tool result with
``isError`` (Claude Code shows its text to the model and the user as the tool's answer);
a refused read (``resources/read``, ``prompts/get``) or a malformed message is a JSON-RPC
error, since those methods have no error result."""

from __future__ import annotations

from typing import Any

__all__ = ["REFUSED", "rpc_error", "tool_refusal"]

REFUSED = -32001
"""JSON-RPC error code (implementation-defined range) for a tether refusal."""
INVALID_REQUEST = -32600


def tool_refusal(rpc_id: Any, reason: str, code: str | None) -> dict[str, Any]:
    text = f"tether refused this call: {reason}" + (f" [{code}]" if code else "")
    return {
        "jsonrpc": "2.0",
        "id": rpc_id,
        "result": {"content": [{"type": "text", "text": text}], "isError": True},
    }


def rpc_error(rpc_id: Any, message: str, code: int = REFUSED, data: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": rpc_id, "error": error}
