"""How a model call's body is edited and its answer read, per request format.

The Messages API, Bedrock's InvokeModel and Vertex share one body format; Bedrock's
Converse has its own (``gateway/bedrock/converse.py``). The shared model call edits a
body (a budget's output cap, a system block) and reads a whole answer (usage, tool calls)
only through this seam, so it never needs to know which format it holds.
"""

from __future__ import annotations

from typing import Any, Protocol

import orjson

from tether.gateway.anthropic.request import with_max_tokens, with_system_block

__all__ = ["MESSAGES_DIALECT", "Dialect", "MessagesDialect"]


class Dialect(Protocol):
    name: str

    def with_max_tokens(self, body: bytes, max_tokens: int) -> bytes: ...

    def with_system_block(self, body: bytes, text: str) -> bytes: ...

    def message(self, data: bytes) -> dict[str, Any] | None:
        """A whole answer as a Messages ``message`` (``usage``, ``content`` with its
        ``tool_use`` blocks, ``model``); None when ``data`` is not an answer."""
        ...


class MessagesDialect:
    name = "messages"

    def with_max_tokens(self, body: bytes, max_tokens: int) -> bytes:
        return with_max_tokens(body, max_tokens)

    def with_system_block(self, body: bytes, text: str) -> bytes:
        return with_system_block(body, text)

    def message(self, data: bytes) -> dict[str, Any] | None:
        try:
            message = orjson.loads(data)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(message, dict) or message.get("type") != "message":
            return None
        return message


MESSAGES_DIALECT = MessagesDialect()
