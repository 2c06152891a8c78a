"""A message batch's budget reservation outlives the request that made it (its results are
read hours later, perhaps by another process): its holds are kept with the batch and
rebuilt here to settle it. The Messages door keeps and finds batches through this, never
through the store itself."""

from __future__ import annotations

from typing import Any

from tether.budgets.book import BudgetBook
from tether.budgets.reservation import BudgetReservation
from tether.clock import now_ms
from tether.records.fleet import SessionRecord
from tether.records.message_batches import BatchRecord
from tether.store.budgets import Hold
from tether.store.message_batches import MessageBatchStore
from tether.store.sessions import SessionStore

__all__ = ["BatchReservations"]


class BatchReservations:
    def __init__(self, book: BudgetBook, store: MessageBatchStore, sessions: SessionStore) -> None:
        self._book = book
        self._store = store
        self._sessions = sessions

    async def keep(
        self,
        batch_id: str,
        project_id: str,
        agent_id: str,
        session_id: str | None,
        reservation: Any,
        models: list[str],
    ) -> None:
        """Remember a batch upstream accepted, with what its decision reserved."""
        reservation_id, holds, micros = self.kept(reservation)
        await self._store.add(
            BatchRecord(
                batch_id,
                project_id,
                agent_id,
                session_id,
                reservation_id,
                holds,
                models,
                micros,
                now_ms(),
            )
        )

    async def find(self, batch_id: str) -> BatchRecord | None:
        return await self._store.get(batch_id)

    async def claim_settlement(self, batch_id: str, micros: int) -> bool:
        """True for the one reader (of any replica) that gets to settle the batch."""
        return await self._store.claim_settlement(batch_id, micros)

    async def canceled_unsettled(self) -> list[BatchRecord]:
        """Batches a kill canceled whose results nobody has settled yet."""
        return await self._store.canceled_unsettled()

    async def session_of(self, batch: BatchRecord) -> SessionRecord | None:
        return await self._sessions.get(batch.session_id) if batch.session_id else None

    @staticmethod
    def kept(reservation: Any) -> tuple[str | None, list[dict[str, Any]], int]:
        """What to store of a decision's reservation: its id, holds and reserved micros."""
        if not isinstance(reservation, BudgetReservation):
            return None, [], 0
        holds = [
            {
                "budget_id": h.budget.id,
                "period_key": h.period_key,
                "period_end": h.period_end,
                "micros": h.micros,
                "tokens": h.tokens,
            }
            for h in reservation.holds
        ]
        return reservation.id, holds, reservation.input_micros

    def rebuilt(self, reservation_id: str, holds: list[dict[str, Any]]) -> BudgetReservation:
        """The reservation to settle; a budget deleted since holds nothing any more."""
        rebuilt = []
        for hold in holds:
            budget = self._book.find(hold["budget_id"])
            if budget is not None:
                rebuilt.append(
                    Hold(
                        budget,
                        hold["period_key"],
                        hold["period_end"],
                        hold["micros"],
                        hold["tokens"],
                    )
                )
        return BudgetReservation(reservation_id, rebuilt, 0, 0.0)
