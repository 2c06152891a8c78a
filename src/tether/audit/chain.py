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
    start_seq: int = 1
    """The first event walked; a walk from after #1 proves nothing about what came before."""
    start: str = "genesis"
    """What the first event was checked against: ``genesis``, ``anchor`` (an expected
    ``SEQ:HASH``) or ``from-seq`` (taken on the operator's word: unanchored)."""

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

    def refuse(self, problem: ChainBreak) -> None:
        if self._break is None:
            self._break = problem

    def report(self, start_seq: int = 1, start: str = "genesis") -> ChainReport:
        return ChainReport(self._checked, self._head, self._break, start_seq, start)


def _starting_point(
    first: dict[str, Any], from_seq: int | None, anchor: ChainHead | None
) -> tuple[ChainHead, str, ChainBreak | None]:
    """Where the walk of an export begins. From #1 it is the genesis hash; a later first
    event must be anchored (``anchor`` is the event before it) or named (``from_seq``),
    so an export with its oldest events cut off does not verify."""
    seq = first.get("seq")
    event_id = str(first.get("id"))
    if not isinstance(seq, int) or seq < 1:
        return ChainHead(0, GENESIS), "genesis", None
    if from_seq is not None and from_seq != seq:
        problem = f"the export starts at #{seq}, not at #{from_seq} (--from-seq)"
        return ChainHead(seq - 1, GENESIS), "from-seq", ChainBreak(seq, event_id, problem)
    if seq == 1:
        return ChainHead(0, GENESIS), "genesis", None
    if anchor is not None and anchor.seq == seq - 1:
        return anchor, "anchor", None
    if from_seq is not None:
        return ChainHead(seq - 1, str(first.get("prev_hash") or "")), "from-seq", None
    problem = (
        f"the export starts at #{seq}, not #1: its oldest events are missing. For a partial "
        f"export, pass --expect with the anchor of event #{seq - 1}, or --from-seq {seq} "
        "to check it from there unanchored"
    )
    return ChainHead(seq - 1, GENESIS), "genesis", ChainBreak(seq, event_id, problem)


def walk_export(
    lines: Iterable[bytes], *, from_seq: int | None = None, anchor: ChainHead | None = None
) -> ChainReport:
    """Verify an export (one stored event per line, chain order) without the database.
    It must start at #1, at ``anchor.seq + 1`` (checked against the anchor's hash), or at
    ``from_seq`` (said explicitly; not anchored)."""
    walker: ChainWalker | None = None
    start_seq, start = 1, "genesis"
    for number, line in enumerate(lines, start=1):
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError:
            event = {"id": f"line {number}", "seq": None}
        if not isinstance(event, dict):
            event = {"id": f"line {number}", "seq": None}
        if walker is None:
            head, start, refused = _starting_point(event, from_seq, anchor)
            start_seq = head.seq + 1
            walker = ChainWalker(head)
            if refused is not None:
                walker.refuse(refused)
                break
        if not walker.feed(event):
            break
    return (walker or ChainWalker()).report(start_seq, start)
