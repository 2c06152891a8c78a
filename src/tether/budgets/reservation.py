"""What one decision holds in the budgets that apply to it, until its call is settled.

The budget stage makes one per allowed model call; a message batch keeps it until its
results are read (``budgets/batches.py``)."""

from __future__ import annotations

from dataclasses import dataclass

from tether.store.budgets import Hold

__all__ = ["BudgetReservation"]


@dataclass(slots=True)
class BudgetReservation:
    id: str
    holds: list[Hold]
    input_micros: int
    output_price: float
    """USD micros per output token."""
