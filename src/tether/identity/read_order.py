"""Reads of one record that overlap may finish out of order: the one started last wins.

A replica reads a project or an agent again when the change feed reports a change, and at
once when it changed the record itself. A feed read that started before this replica's own
change committed can come back after the fresh read and bring the older record with it
(the guards set here undone, an AWS key revoked here live again) until the next change. A
read started later sees every commit that ended before it began, so it is never older.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Read", "ReadOrder"]


@dataclass(frozen=True, slots=True)
class Read:
    ref: str
    number: int


@dataclass
class ReadOrder:
    """Numbers reads as they start; a read is kept unless a later-started read of the same
    record was kept first. One entry per record ever read (the fleet's projects and agents)."""

    _started: int = 0
    _kept: dict[str, int] = field(default_factory=dict)

    def start(self, ref: str) -> Read:
        self._started += 1
        return Read(ref, self._started)

    def is_latest(self, read: Read) -> bool:
        """Whether ``read``'s result may replace what is held; it is then the latest kept."""
        if read.number < self._kept.get(read.ref, 0):
            return False
        self._kept[read.ref] = read.number
        return True
