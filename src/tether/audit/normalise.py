"""The one gate every audit event passes before it joins a batch: it becomes a row that
any backend stores and any hasher accepts, with secrets blanked.

Whatever a caller put in an event (undecodable header bytes, NUL characters, a 200-
character tool name, an integer of 400 digits, a password in a command line), the row
fits the audit table's columns and serialises, so one request's odd input can never
fail the shared batch its neighbours' decisions are in.
"""

from __future__ import annotations

import functools
import itertools
from typing import Any

import orjson
from sqlalchemy import String

from tether.audit.chain import BASE_COLUMNS
from tether.audit.event import AuditEvent
from tether.redaction.text import (
    CACHED_CHARS,
    REDACTED,
    is_plain_id,
    is_secret_name,
    redact_text,
)
from tether.store.schema import audit_events

__all__ = [
    "MAX_ATTRIBUTES_CHARS",
    "MAX_TEXT_CHARS",
    "clean_text",
    "normalised_row",
    "remembered",
]

MAX_TEXT_CHARS = 16_384
"""Bound on the unbounded text columns (resource, reason): enough for any command line."""
MAX_ATTRIBUTES_CHARS = 65_536
REDACT_MARGIN = 8_192
"""Characters past a cut that are still scanned, so a secret across it is blanked whole
(a PEM key runs to about 3,300 characters)."""
MAX_DEPTH = 16
MAX_NAME_CHARS = 128
MAX_ITEMS = 256
INT64 = 2**63
TRUNCATED = "…"

_LIMITS: dict[str, int] = {
    column.name: (
        column.type.length
        if isinstance(column.type, String) and column.type.length
        else MAX_TEXT_CHARS
    )
    for column in audit_events.columns
    if column.name in BASE_COLUMNS
}


def clean_text(value: str, limit: int = MAX_TEXT_CHARS) -> str:
    """Valid UTF-8 without NUL (PostgreSQL refuses both), secrets blanked, at most
    ``limit`` characters (cut ones end in ``…``)."""
    if len(value) <= CACHED_CHARS:
        if is_plain_id(value):
            return value
        cleaned = _clean_short(value)
        return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + TRUNCATED
    value = _storable(value)
    if len(value) > limit:
        # Only what is kept is scanned, with a margin so a secret cut at the edge is
        # still recognised: a megabyte value costs what 16 KB does.
        value = redact_text(value[: limit + REDACT_MARGIN])
        return value if len(value) <= limit else value[: limit - 1] + TRUNCATED
    return redact_text(value)


@functools.lru_cache(maxsize=16_384)
def _clean_short(value: str) -> str:
    """Short texts (names, models, reasons, codes) repeat on every event: cleaned once."""
    return redact_text(_storable(value))


def _storable(value: str) -> str:
    if not value.isascii():
        value = value.encode("utf-8", "backslashreplace").decode("utf-8")
    if "\x00" in value:
        value = value.replace("\x00", "\\x00")
    return value


def _clean(value: Any, depth: int) -> Any:
    """JSON that orjson serialises: str keys, 64-bit integers, bounded depth and width.
    The exact built-in types an event carries are told apart first (every value of every
    event passes here); subclasses and anything else take the general path."""
    kind = type(value)
    if kind is str:
        return clean_text(value)
    if value is None or kind is bool or kind is float:
        return value
    if kind is int:
        return value if -INT64 <= value < INT64 else _long_int(value)
    if kind is dict and depth < MAX_DEPTH:
        return _clean_dict(value, depth)
    return _clean_other(value, depth)


def _clean_dict(value: dict[Any, Any], depth: int) -> dict[str, Any]:
    cleaned: dict[str, Any] = {}
    for key, item in itertools.islice(value.items(), MAX_ITEMS):
        text = key if type(key) is str else str(key)
        name, secret = _attribute_name(text) if len(text) <= MAX_NAME_CHARS else _name(text)
        secret = secret and isinstance(item, str)
        cleaned[name] = REDACTED if secret else _clean(item, depth + 1)
    return cleaned


def _name(key: str) -> tuple[str, bool]:
    """An attribute's key as stored, and whether the value it names is a secret."""
    name = clean_text(key, MAX_NAME_CHARS)
    return name, is_secret_name(name)


_attribute_name = functools.lru_cache(maxsize=4_096)(_name)
"""Keys repeat on every event (``model``, ``status``, ``usage``): looked at once."""


def _clean_other(value: Any, depth: int) -> Any:
    if isinstance(value, bool | float):
        return value
    if isinstance(value, int):
        return value if -INT64 <= value < INT64 else _long_int(value)
    if isinstance(value, str):
        return clean_text(value)
    if depth >= MAX_DEPTH:
        return TRUNCATED
    if isinstance(value, dict):
        return _clean_dict(value, depth)
    if isinstance(value, list | tuple | set | frozenset):
        return [_clean(item, depth + 1) for item in list(value)[:MAX_ITEMS]]
    return clean_text(str(value))


def _long_int(value: int) -> str:
    return f"{str(value)[:32]}… ({len(str(value))} digits)"


def _attributes(attributes: dict[str, Any]) -> str:
    text = orjson.dumps(_clean(attributes, 0)).decode()
    if len(text) <= MAX_ATTRIBUTES_CHARS:
        return text
    return orjson.dumps(
        {"truncated": True, "chars": len(text), "start": text[: MAX_ATTRIBUTES_CHARS // 2]}
    ).decode()


def _column(name: str, value: str | None) -> str | None:
    return None if value is None else clean_text(str(value), _LIMITS[name])


def normalised_row(event: AuditEvent) -> tuple[Any, ...]:
    """The event's values in ``BASE_COLUMNS`` order, each fitting its column."""
    project_id, agent_id, agent_name, actor, source = _columns(
        WHO, event.project_id, event.agent_id, event.agent_name, event.actor, event.source
    )
    return (
        _column("id", event.id),
        int(event.ts),
        project_id,
        agent_id,
        agent_name,
        _column("session_id", event.session_id),
        actor,
        source,
        *_columns(WHAT, event.action, event.resource, event.result, event.code),
        _column("reason", event.reason),
        _attributes(event.attributes),
    )


WHO = ("project_id", "agent_id", "agent_name", "actor", "source")
WHAT = ("action", "resource", "result", "code")
"""Columns whose values come together on event after event (an agent, a call of one
kind): cleaned once for every event that repeats them. A session's id is not among them:
a client without a session header starts a new one on every conversation."""
MAX_REMEMBERED_CHARS = 1_024
"""The longest set of values remembered, so the cache stays small whatever callers send."""


def _columns(names: tuple[str, ...], *values: str | None) -> tuple[str | None, ...]:
    try:
        size = sum([len(value) for value in values if value is not None])
    except TypeError:
        size = MAX_REMEMBERED_CHARS + 1
    if size > MAX_REMEMBERED_CHARS:
        return _uncached_columns(names, values)
    return _remembered_columns(names, values)


def _uncached_columns(names: tuple[str, ...], values: tuple[Any, ...]) -> tuple[str | None, ...]:
    return tuple([_column(name, value) for name, value in zip(names, values, strict=True)])


_remembered_columns = functools.lru_cache(maxsize=4_096)(_uncached_columns)


def remembered() -> dict[str, int]:
    """Entries in the normaliser's caches (``tether_in_memory_entries``)."""
    return {
        "audit_texts": _clean_short.cache_info().currsize,
        "audit_attribute_names": _attribute_name.cache_info().currsize,
        "audit_column_sets": _remembered_columns.cache_info().currsize,
    }
