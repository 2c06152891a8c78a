"""What of a tool's input goes into the audit trail: a digest of all of it, and a short
summary with anything that looks like a secret blanked."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

__all__ = ["digest", "redact_text", "redacted_summary"]

SECRET_NAMES = re.compile(
    r"(secret|passw|token|api[_-]?key|authorization|credential|private)", re.I
)
SECRET_VALUES = re.compile(
    r"(sk-ant-[A-Za-z0-9_\-]{8,}|tth_[A-Za-z0-9_\-]{8,}|tta_[A-Za-z0-9_\-]{8,}|AKIA[0-9A-Z]{16}"
    r"|ghp_[A-Za-z0-9]{20,}|xox[abp]-[A-Za-z0-9\-]{10,}|(?i:bearer)\s+[A-Za-z0-9._\-]{12,})"
)
SUMMARY_CHARS = 200


def digest(value: Any) -> str:
    """SHA-256 of the canonical JSON: equal inputs give equal digests (loop detection)."""
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def redact_text(text: str) -> str:
    """``text`` with anything that looks like a key or token blanked."""
    return SECRET_VALUES.sub("[redacted]", text)


def _redact(value: Any, depth: int = 0) -> Any:
    if depth > 8:
        return "…"
    if isinstance(value, dict):
        return {
            key: "[redacted]" if SECRET_NAMES.search(str(key)) else _redact(item, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_redact(item, depth + 1) for item in value[:20]]
    if isinstance(value, str):
        return SECRET_VALUES.sub("[redacted]", value)
    return value


def redacted_summary(value: Any, limit: int = SUMMARY_CHARS) -> str:
    text = json.dumps(_redact(value), separators=(",", ":"), default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"
