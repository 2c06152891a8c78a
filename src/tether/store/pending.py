"""A write a decision waits for later, started now: on SQLite it joins the writer's next
transaction (``SqliteWriter.queue``); on PostgreSQL it runs on a connection of its own
(``PendingStatement``) while the request's other stages go on."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Generic, Protocol, TypeVar

__all__ = ["PendingStatement", "PendingWrite"]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class PendingWrite(Protocol[T_co]):
    def add_done_callback(self, callback: Callable[[asyncio.Future[Any]], None]) -> None: ...

    async def result(self) -> T_co:
        """Once the write is durable; raises what it failed with."""
        ...


class PendingStatement(Generic[T]):
    """A statement sent now, on its own connection; a waiter that is cancelled does not
    cancel it (others may wait for it too, and it commits all the same)."""

    def __init__(self, statement: Coroutine[Any, Any, T]) -> None:
        self._task = asyncio.get_running_loop().create_task(statement)

    def add_done_callback(self, callback: Callable[[asyncio.Future[Any]], None]) -> None:
        self._task.add_done_callback(callback)

    async def result(self) -> T:
        return await asyncio.shield(self._task)
