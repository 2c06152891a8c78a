"""ConverseStream's event frames as the Messages events the shared tap reads.

Each frame is read as exactly one event, handed to the tap with the frame itself, so the
agent gets back the very frames Bedrock sent: ``messageStart`` → ``message_start``,
``contentBlockStart`` (a ``toolUse``) → ``content_block_start``, ``contentBlockDelta`` →
``content_block_delta``, ``contentBlockStop`` → ``content_block_stop``, ``messageStop`` →
``message_delta`` (its stop reason) and ``metadata`` → ``message_stop`` carrying the
usage, which Converse reports last. Frames the tap has no use for pass as events it
ignores. tether's error events (a kill, a budget mid-stream) become exception frames, as
on InvokeModel.
"""

from __future__ import annotations

from typing import Any

import orjson

from tether.gateway.anthropic.stream_tap import ReadEvent
from tether.gateway.bedrock.converse import converse_usage
from tether.gateway.bedrock.eventstream import Frame
from tether.gateway.bedrock.stream import BedrockStreamCodec

__all__ = ["ConverseStreamCodec"]

_IGNORED = (b"converse_other", b"{}")


def _event(name: bytes, data: dict[str, Any]) -> tuple[bytes, bytes]:
    return name, orjson.dumps(data)


def _delta(delta: Any) -> dict[str, Any]:
    if not isinstance(delta, dict):
        return {"type": "text_delta", "text": ""}
    if "text" in delta:
        return {"type": "text_delta", "text": delta["text"]}
    if isinstance(use := delta.get("toolUse"), dict):
        return {"type": "input_json_delta", "partial_json": use.get("input", "")}
    if isinstance(reasoning := delta.get("reasoningContent"), dict):
        return {"type": "thinking_delta", "thinking": reasoning.get("text", "")}
    return {"type": "other_delta"}


class ConverseStreamCodec(BedrockStreamCodec):
    def event_of(self, frame: Frame) -> ReadEvent:
        name, data = self._event(frame)
        return name, data, frame.raw

    def _event(self, frame: Frame) -> tuple[bytes, bytes]:
        kind = frame.headers.get(":event-type", "")
        payload = orjson.loads(frame.payload) if frame.payload else {}
        if not isinstance(payload, dict):
            return _IGNORED
        index = payload.get("contentBlockIndex", 0)
        if kind == "contentBlockDelta":
            block = {"type": "content_block_delta", "index": index}
            return _event(b"content_block_delta", block | {"delta": _delta(payload.get("delta"))})
        if kind == "messageStart":
            message = {"type": "message", "role": payload.get("role", "assistant"), "content": []}
            return _event(b"message_start", {"type": "message_start", "message": message})
        if kind == "contentBlockStart":
            start = payload.get("start") or {}
            use = start.get("toolUse") if isinstance(start, dict) else None
            if isinstance(use, dict):
                block = {
                    "type": "tool_use",
                    "id": use.get("toolUseId", ""),
                    "name": use.get("name", ""),
                    "input": {},
                }
            else:
                block = {"type": "text", "text": ""}
            return _event(
                b"content_block_start",
                {"type": "content_block_start", "index": index, "content_block": block},
            )
        if kind == "contentBlockStop":
            return _event(b"content_block_stop", {"type": "content_block_stop", "index": index})
        if kind == "messageStop":
            delta = {"stop_reason": payload.get("stopReason")}
            return _event(b"message_delta", {"type": "message_delta", "delta": delta})
        if kind == "metadata":
            usage = converse_usage(payload.get("usage"))
            return _event(b"message_stop", {"type": "message_stop", "usage": usage})
        return _IGNORED

    def event_frame(self, name: bytes, data: bytes) -> bytes:
        """tether writes no Converse events of its own but errors (exception frames)."""
        return b""
