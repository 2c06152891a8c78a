"""Bounded memory in a plain dict: least recently remembered forgotten first."""

from __future__ import annotations

from typing import TypeVar

__all__ = ["remember"]

K = TypeVar("K")
V = TypeVar("V")


def remember(memory: dict[K, V], key: K, value: V, limit: int) -> None:
    """Keep ``key`` as the most recently remembered (a dict keeps insertion order); past
    ``limit``, forget the one remembered longest ago, one at a time (emptying it all at once
    makes a burst of misses, every one recomputed together)."""
    memory.pop(key, None)
    memory[key] = value
    if len(memory) > limit:
        del memory[next(iter(memory))]
