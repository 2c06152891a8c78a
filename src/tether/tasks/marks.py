"""What this process remembers of each session with a task: tool batches and turns since
the last injection and checkpoint, the latest context fill, the warnings already given.

Memory per process, like the guards' (sessions are sticky at the load balancer): a
replica that restarts forgets it, and at worst re-injects or warns once more.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from tether.store.tasks import TaskRecord

__all__ = ["SessionMark", "SessionMarks"]

MAX_SESSIONS = 20_000
TASK_RECHECK_MS = 2_000
"""How long what the store said of a session's task is believed before asking again."""


@dataclass(slots=True)
class SessionMark:
    task: TaskRecord | None = None
    checked_at: int = 0
    batches: int = 0
    """Tool batches (PostToolBatch) since the task was last injected."""
    turns: int = 0
    """Turns (model calls) since the last checkpoint."""
    turns_at_injection: int = 0
    fill_percent: float = 0.0
    warned: set[str] = field(default_factory=set)
    reminder: str | None = None
    reminded: bool = False
    block: str | None = None
    """The rendered block, until the task or its checkpoints change."""


class SessionMarks:
    def __init__(self) -> None:
        self._marks: OrderedDict[str, SessionMark] = OrderedDict()

    def peek(self, session_id: str) -> SessionMark | None:
        return self._marks.get(session_id)

    def of(self, session_id: str) -> SessionMark:
        mark = self._marks.get(session_id)
        if mark is None:
            mark = self._marks[session_id] = SessionMark()
            while len(self._marks) > MAX_SESSIONS:
                self._marks.popitem(last=False)
        else:
            self._marks.move_to_end(session_id)
        return mark

    def task_changed(self, task_id: str) -> None:
        """The task's state, batches or checkpoints changed: render its block again."""
        for mark in self._marks.values():
            if mark.task is not None and mark.task.id == task_id:
                mark.block, mark.checked_at = None, 0

    def checkpointed(self, task_id: str) -> None:
        """A checkpoint was written: the turn count and the reminder start over."""
        for mark in self._marks.values():
            if mark.task is not None and mark.task.id == task_id:
                mark.block, mark.turns, mark.turns_at_injection = None, 0, 0
                mark.reminder, mark.reminded = None, False
                mark.warned.discard("turns_without_checkpoint")
