"""A message batch's budget reservation outlives the request that made it (its results are
read hours later, perhaps by another process): its holds are kept with the batch and
rebuilt here to settle it."""

from __future__ import annotations

from typing import Any

from tether.budgets.book import BudgetBook
from tether.pipeline.stages.budget import BudgetReservation
from tether.store.budgets import Hold

__all__ = ["BatchReservations"]


class BatchReservations:
    def __init__(self, book: BudgetBook) -> None:
        self._book = book

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
