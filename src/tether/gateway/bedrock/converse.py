"""Bedrock's Converse API read as the Messages API the pipeline knows.

A Converse request (``messages`` of content blocks — ``text``, ``toolUse``,
``toolResult`` —, ``system`` blocks, ``inferenceConfig.maxTokens``) is read into the same
``MessagesRequest`` an InvokeModel body gives: the body itself is relayed as it is, only
edited where tether must (a budget's output cap into ``inferenceConfig.maxTokens``, a
system block appended). A Converse answer (``output.message``, ``usage.inputTokens``…) is
read as a Messages message for settlement and tool review.
"""

from __future__ import annotations

from typing import Any

import orjson

from tether.errors import BadRequest
from tether.gateway.anthropic.request import MessagesRequest, parse_messages_request

__all__ = [
    "CONVERSE_DEFAULT_MAX_TOKENS",
    "CONVERSE_DIALECT",
    "ConverseDialect",
    "converse_usage",
    "parse_converse_request",
]

CONVERSE_DEFAULT_MAX_TOKENS = 4096
"""What a Converse request that names no ``inferenceConfig.maxTokens`` is reserved for (and
capped at when a budget caps output); a longer answer is covered as it streams."""


def _document(body: bytes) -> dict[str, Any]:
    if not body:
        raise BadRequest("the body is empty; send a Converse request", code="invalid_json")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    return data


def _block(block: Any) -> Any:
    """A Converse content block as the Messages block the guards read."""
    if not isinstance(block, dict):
        return block
    if "text" in block:
        return {"type": "text", "text": block["text"]}
    if isinstance(use := block.get("toolUse"), dict):
        return {
            "type": "tool_use",
            "id": use.get("toolUseId", ""),
            "name": use.get("name", ""),
            "input": use.get("input"),
        }
    if isinstance(result := block.get("toolResult"), dict):
        return {
            "type": "tool_result",
            "tool_use_id": result.get("toolUseId", ""),
            "content": result.get("content"),
            "is_error": result.get("status") == "error",
        }
    return {"type": next(iter(block), "unknown")}


def _as_messages(data: dict[str, Any]) -> dict[str, Any]:
    messages = data.get("messages")
    if not isinstance(messages, list):
        raise BadRequest("messages: Field required (a list of Converse messages)")
    config = data.get("inferenceConfig") or {}
    if not isinstance(config, dict):
        raise BadRequest("inferenceConfig: must be an object")
    max_tokens = config.get("maxTokens", CONVERSE_DEFAULT_MAX_TOKENS)
    extra = data.get("additionalModelRequestFields")
    return {
        "max_tokens": max_tokens,
        "system": data.get("system"),
        "thinking": extra.get("thinking") if isinstance(extra, dict) else None,
        "messages": [
            {"role": message.get("role"), "content": _request_blocks(message, at)}
            if isinstance(message, dict)
            else message
            for at, message in enumerate(messages)
        ],
    }


def _request_blocks(message: dict[str, Any], at: int) -> list[Any]:
    content = message.get("content") or []
    if not isinstance(content, list):
        raise BadRequest(f"messages[{at}].content: must be a list of content blocks")
    return [_block(block) for block in content]


def parse_converse_request(body: bytes, model: str, stream: bool) -> MessagesRequest:
    """Raises ``BadRequest`` (400) when ``body`` is not a Converse request."""
    equivalent = orjson.dumps(_as_messages(_document(body)))
    try:
        return parse_messages_request(
            equivalent, require_max_tokens=True, model=model, stream=stream
        )
    except BadRequest as exc:
        raise BadRequest(
            exc.message.replace("max_tokens", "inferenceConfig.maxTokens"), code=exc.code
        ) from None


def converse_usage(reported: Any) -> dict[str, int]:
    """Converse's ``usage`` as the Messages API names it."""
    if not isinstance(reported, dict):
        return {}
    names = {
        "inputTokens": "input_tokens",
        "outputTokens": "output_tokens",
        "cacheReadInputTokens": "cache_read_input_tokens",
        "cacheWriteInputTokens": "cache_creation_input_tokens",
    }
    return {ours: reported[theirs] for theirs, ours in names.items() if theirs in reported}


class ConverseDialect:
    name = "converse"

    def with_max_tokens(self, body: bytes, max_tokens: int) -> bytes:
        data = orjson.loads(body)
        config = data.get("inferenceConfig")
        data["inferenceConfig"] = {**(config if isinstance(config, dict) else {})}
        data["inferenceConfig"]["maxTokens"] = max_tokens
        return orjson.dumps(data)

    def with_system_block(self, body: bytes, text: str) -> bytes:
        """``text`` as a last system block: after the agent's and after its last
        ``cachePoint``, so the cached prefix still matches."""
        data = orjson.loads(body)
        system = data.get("system")
        data["system"] = [*(system if isinstance(system, list) else []), {"text": text}]
        return orjson.dumps(data)

    def message(self, data: bytes) -> dict[str, Any] | None:
        try:
            answer = orjson.loads(data)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(answer, dict):
            return None
        output = answer.get("output")
        message = output.get("message") if isinstance(output, dict) else None
        if not isinstance(message, dict) or not isinstance(answer.get("usage"), dict):
            return None
        content = message.get("content")
        return {
            "type": "message",
            "content": [_block(block) for block in content] if isinstance(content, list) else [],
            "stop_reason": answer.get("stopReason"),
            "usage": converse_usage(answer["usage"]),
        }


CONVERSE_DIALECT = ConverseDialect()
