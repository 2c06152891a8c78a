"""What the gateway needs from a Messages request body, and nothing more."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import orjson

from tether.errors import BadRequest
from tether.guards.fingerprints import result_fingerprint
from tether.pipeline.outcome import ToolResult

__all__ = ["MessagesRequest", "parse_messages_request", "with_max_tokens", "with_system_block"]


@dataclass(frozen=True, slots=True)
class MessagesRequest:
    model: str
    stream: bool
    max_tokens: int | None
    tool_results: list[ToolResult] = field(default_factory=list)
    thinking_budget: int = 0
    """``thinking.budget_tokens`` when extended thinking is on: part of ``max_tokens``."""
    system: Any = None
    first_message: Any = None

    def conversation(self) -> str:
        """What stays fixed while a conversation grows: its system prompt and first
        message. Callers that name no session are known by it."""
        material = orjson.dumps([self.system, self.first_message], option=orjson.OPT_SORT_KEYS)
        return hashlib.blake2b(material, digest_size=16).hexdigest()


def _new_tool_results(messages: Any) -> list[ToolResult]:
    """Only the results after the model's last turn are new: earlier ones were sent (and
    recorded) before. Claude Code may follow them with a mid-conversation ``system``
    message, so the whole tail after the last assistant message counts."""
    if not isinstance(messages, list):
        return []
    results: list[ToolResult] = []
    for message in reversed(messages):
        if not isinstance(message, dict) or message.get("role") == "assistant":
            break
        content = message.get("content")
        if message.get("role") != "user" or not isinstance(content, list):
            continue
        results[:0] = [
            ToolResult(
                str(block.get("tool_use_id", "")),
                bool(block.get("is_error", False)),
                result_fingerprint([block.get("content"), bool(block.get("is_error", False))]),
            )
            for block in content
            if isinstance(block, dict) and block.get("type") == "tool_result"
        ]
    return results


def parse_messages_request(
    body: bytes,
    *,
    require_max_tokens: bool,
    model: str | None = None,
    stream: bool | None = None,
) -> MessagesRequest:
    """``model`` and ``stream``: what the cloud doors read from the path (Bedrock and
    Vertex bodies name no model; Bedrock's stream is its own operation)."""
    if not body:
        raise BadRequest("the body is empty; send a Messages API request", code="invalid_json")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    if model is None:
        model = data.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("model: Field required (a model id such as claude-sonnet-5)")
    max_tokens = data.get("max_tokens")
    if require_max_tokens and (not isinstance(max_tokens, int) or isinstance(max_tokens, bool)):
        raise BadRequest("max_tokens: Field required (a positive integer)")
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
        raise BadRequest("max_tokens: must be a positive integer")
    if stream is None:
        stream = data.get("stream", False)
    if not isinstance(stream, bool):
        raise BadRequest("stream: must be true or false")
    messages = data.get("messages")
    return MessagesRequest(
        model=model,
        stream=stream,
        max_tokens=max_tokens,
        tool_results=_new_tool_results(messages),
        thinking_budget=_thinking_budget(data.get("thinking")),
        system=data.get("system"),
        first_message=messages[0] if isinstance(messages, list) and messages else None,
    )


def _thinking_budget(thinking: Any) -> int:
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens")
        if isinstance(budget, int) and not isinstance(budget, bool) and budget > 0:
            return budget
    return 0


def with_max_tokens(body: bytes, max_tokens: int) -> bytes:
    """The same request asking for at most ``max_tokens`` (a budget's cap)."""
    data = orjson.loads(body)
    data["max_tokens"] = max_tokens
    return orjson.dumps(data)


def with_system_block(body: bytes, text: str) -> bytes:
    """The same request with ``text`` as a last ``system`` block: after the agent's own
    system prompt (kept as it was, a string becoming its first block) and after its last
    ``cache_control`` breakpoint, so the cached prefix still matches."""
    data = orjson.loads(body)
    system = data.get("system")
    block = {"type": "text", "text": text}
    if isinstance(system, list):
        data["system"] = [*system, block]
    elif isinstance(system, str) and system:
        data["system"] = [{"type": "text", "text": system}, block]
    else:
        data["system"] = [block]
    return orjson.dumps(data)
