"""What makes two calls "the same call" for the repeat guard."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

__all__ = ["body_fingerprint", "tool_use_fingerprint"]


def body_fingerprint(body: bytes) -> str:
    """Byte-identical request bodies: a retry, or an agent re-sending the same turn."""
    return "body:" + hashlib.blake2b(body, digest_size=16).hexdigest()


def tool_use_fingerprint(name: str, tool_input: Any) -> str:
    """The model asking for the same tool with the same input (key order ignored)."""
    try:
        canonical = orjson.dumps(tool_input, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        canonical = repr(tool_input).encode()
    digest = hashlib.blake2b(canonical, digest_size=16).hexdigest()
    return f"tool_use:{name}:{digest}"
