"""The audit trail's hash chain: every event carries its position (``seq``), the hash of
the event before it and its own hash over both and every stored column. Changing, removing
or re-ordering any event breaks every hash after it; ``verify_chain`` finds the first break.

The material hashed is the stored column values (the attributes as their stored JSON
text), so the database, an export file or a third party can all recompute it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = [
    "BASE_COLUMNS",
    "GENESIS",
    "ChainBreak",
    "ChainHead",
    "ChainReport",
    "ChainWalker",
    "event_hash",
    "link",
    "walk_export",
]

GENESIS = "0" * 64
BASE_COLUMNS = (
    "id",
    "ts",
    "project_id",
    "agent_id",
    "agent_name",
    "session_id",
    "actor",
    "source",
    "action",
    "resource",
    "result",
    "code",
    "reason",
    "attributes",
)


@dataclass(frozen=True, slots=True)
class ChainHead:
    seq: int
    hash: str


def event_hash(seq: int, prev_hash: str, values: Sequence[Any]) -> str:
    """``values`` are the event's ``BASE_COLUMNS`` as stored."""
    return hashlib.sha256(orjson.dumps([seq, prev_hash, *values])).hexdigest()


def _recomputed(seq: int, prev_hash: str, event: dict[str, Any]) -> str | None:
    """None when the values cannot even be hashed (so were not what tether stored)."""
    try:
        return event_hash(seq, prev_hash, [event.get(c) for c in BASE_COLUMNS])
    except (TypeError, orjson.JSONEncodeError):
        return None


def link(
    rows: Iterable[tuple[Any, ...]], head: ChainHead
) -> tuple[list[tuple[Any, ...]], ChainHead]:
    """Rows in ``BASE_COLUMNS`` order, extended with ``seq, prev_hash, hash`` after ``head``."""
    linked = []
    seq, prev = head.seq, head.hash
    for row in rows:
        seq += 1
        digest = event_hash(seq, prev, row)
        linked.append((*row, seq, prev, digest))
        prev = digest
    return linked, ChainHead(seq, prev)


@dataclass(frozen=True, slots=True)
class ChainBreak:
    seq: int
    event_id: str
    problem: str


@dataclass(frozen=True, slots=True)
class ChainReport:
    checked: int
    head: ChainHead
    first_break: ChainBreak | None

    @property
    def intact(self) -> bool:
        return self.first_break is None


class ChainWalker:
    """Feed events in ``seq`` order (dicts with the base columns and ``seq``, ``prev_hash``,
    ``hash``); stops judging at the first break, which is what an operator needs."""

    def __init__(self, start: ChainHead | None = None) -> None:
        self._head = start or ChainHead(0, GENESIS)
        self._checked = 0
        self._break: ChainBreak | None = None

    def feed(self, event: dict[str, Any]) -> bool:
        """False once the chain is broken."""
        if self._break is not None:
            return False
        raw_seq, event_id = event.get("seq"), str(event.get("id"))
        seq = raw_seq if isinstance(raw_seq, int) else -1
        problem = None
        if seq != self._head.seq + 1:
            problem = (
                f"expected event #{self._head.seq + 1} here, found #{raw_seq}: events are missing"
            )
        elif event.get("prev_hash") != self._head.hash:
            problem = "its prev_hash is not the hash of the event before it"
        elif event.get("hash") != _recomputed(seq, self._head.hash, event):
            problem = "its content does not match its hash: it was changed after it was written"
        if problem is not None:
            self._break = ChainBreak(seq, event_id, problem)
            return False
        self._head = ChainHead(seq, event["hash"])
        self._checked += 1
        return True

    def expect_head(self, head: ChainHead) -> None:
        """The stored chain head must be where the walk ended: otherwise the tail was cut."""
        if self._break is None and head != self._head:
            self._break = ChainBreak(
                head.seq,
                "",
                f"the chain ends at #{self._head.seq} but its recorded head is #{head.seq}: "
                "the newest events were removed",
            )

    def report(self) -> ChainReport:
        return ChainReport(self._checked, self._head, self._break)


def walk_export(lines: Iterable[bytes]) -> ChainReport:
    """Verify an export (one stored event per line, chain order) without the database. A
    partial export (``--after-seq``) is checked from its first event on."""
    walker: ChainWalker | None = None
    for number, line in enumerate(lines, start=1):
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError:
            event = {"id": f"line {number}", "seq": None}
        if not isinstance(event, dict):
            event = {"id": f"line {number}", "seq": None}
        if walker is None:
            first = event.get("seq")
            start = first - 1 if isinstance(first, int) and first > 0 else 0
            walker = ChainWalker(ChainHead(start, str(event.get("prev_hash") or GENESIS)))
        if not walker.feed(event):
            break
    return (walker or ChainWalker()).report()
