"""What makes two calls "the same call" for the repeat guard."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

__all__ = ["action_fingerprint", "body_fingerprint", "tool_use_fingerprint"]

DIGEST_BYTES = 12
"""Short keys keep a session's memory small; a collision within one session is negligible."""


def body_fingerprint(body: bytes) -> str:
    """Byte-identical request bodies: a retry, or an agent re-sending the same turn."""
    return "body:" + hashlib.blake2b(body, digest_size=DIGEST_BYTES).hexdigest()


def action_fingerprint(action: str, resource: str) -> str:
    """The same action on the same resource (hooks, ``/v1/authorize``)."""
    material = f"{action}\0{resource}".encode()
    return "call:" + hashlib.blake2b(material, digest_size=DIGEST_BYTES).hexdigest()


def tool_use_fingerprint(name: str, tool_input: Any) -> str:
    """The model asking for the same tool with the same input (key order ignored)."""
    try:
        canonical = orjson.dumps(tool_input, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        canonical = repr(tool_input).encode()
    digest = hashlib.blake2b(canonical, digest_size=DIGEST_BYTES).hexdigest()
    return f"tool_use:{name}:{digest}"
