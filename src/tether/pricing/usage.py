"""Token usage as the Messages API reports it, in ``usage`` and in stream events."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Usage"]


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and value >= 0 else None


@dataclass(slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_1h_tokens: int = 0
    """Of ``cache_creation_input_tokens``, how many were written with the 1-hour TTL."""

    def update(self, reported: Any) -> None:
        """Fold in a ``usage`` object; later reports carry cumulative counts, so they win."""
        if not isinstance(reported, dict):
            return
        for name in (
            "input_tokens",
            "output_tokens",
            "cache_creation_input_tokens",
            "cache_read_input_tokens",
        ):
            value = _count(reported.get(name))
            if value is not None:
                setattr(self, name, value)
        creation = reported.get("cache_creation")
        if isinstance(creation, dict):
            one_hour = _count(creation.get("ephemeral_1h_input_tokens"))
            if one_hour is not None:
                self.cache_creation_1h_tokens = one_hour

    @property
    def total_tokens(self) -> int:
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_creation_input_tokens
            + self.cache_read_input_tokens
        )

    def as_dict(self) -> dict[str, int]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
        }
