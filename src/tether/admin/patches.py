"""PATCH bodies: only the fields sent change, and some fields may not be set to null."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from tether.errors import BadRequest

__all__ = ["changes_in", "not_null"]


def not_null(schema: dict[str, Any]) -> None:
    """JSON Schema for a PATCH field that may be left out but not set to null (the model
    types it ``X | None`` only so that "not sent" has a value)."""
    if schema.get("default", ...) is None:
        del schema["default"]
    options = [option for option in schema.pop("anyOf", []) if option.get("type") != "null"]
    if len(options) == 1:
        schema.update(options[0])
    elif options:
        schema["anyOf"] = options


def changes_in(payload: BaseModel, not_null: frozenset[str]) -> dict[str, Any]:
    """The fields the caller sent; 400 when none were, or when a ``not_null`` one is null."""
    changes = payload.model_dump(exclude_unset=True)
    if not changes:
        fields = ", ".join(type(payload).model_fields)
        raise BadRequest(f"nothing to change: send any of {fields}")
    for name in sorted(not_null & {k for k, v in changes.items() if v is None}):
        raise BadRequest(f"{name} cannot be null")
    return changes
