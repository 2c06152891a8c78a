"""What the gateway needs from a Messages request body, and nothing more."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from tether.errors import BadRequest
from tether.pipeline.outcome import ToolResult

__all__ = ["MessagesRequest", "parse_messages_request"]


@dataclass(frozen=True, slots=True)
class MessagesRequest:
    model: str
    stream: bool
    max_tokens: int | None
    tool_results: list[ToolResult] = field(default_factory=list)


def _new_tool_results(messages: Any) -> list[ToolResult]:
    """Only the last user turn's results are new: earlier ones were sent (and recorded) before."""
    if not isinstance(messages, list) or not messages:
        return []
    last = messages[-1]
    if not isinstance(last, dict) or last.get("role") != "user":
        return []
    content = last.get("content")
    if not isinstance(content, list):
        return []
    return [
        ToolResult(str(block.get("tool_use_id", "")), bool(block.get("is_error", False)))
        for block in content
        if isinstance(block, dict) and block.get("type") == "tool_result"
    ]


def parse_messages_request(body: bytes, *, require_max_tokens: bool) -> MessagesRequest:
    if not body:
        raise BadRequest("the body is empty; send a Messages API request", code="invalid_json")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("model: Field required (a model id such as claude-sonnet-5)")
    max_tokens = data.get("max_tokens")
    if require_max_tokens and (not isinstance(max_tokens, int) or isinstance(max_tokens, bool)):
        raise BadRequest("max_tokens: Field required (a positive integer)")
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
        raise BadRequest("max_tokens: must be a positive integer")
    stream = data.get("stream", False)
    if not isinstance(stream, bool):
        raise BadRequest("stream: must be true or false")
    return MessagesRequest(
        model=model,
        stream=stream,
        max_tokens=max_tokens,
        tool_results=_new_tool_results(data.get("messages")),
    )
