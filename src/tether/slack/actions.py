"""The ``action_id`` of each button tether puts on an approval message, and its ``value``:
the approval's id and, for a group, how many actions the message showed (a click grants no
more than the approver saw)."""

from __future__ import annotations

__all__ = ["APPROVE", "DECISIONS", "DENY", "button_value", "read_button_value"]

APPROVE = "tether_approval_approve"
DENY = "tether_approval_deny"
DECISIONS = {APPROVE: True, DENY: False}
"""Which action approves (True) and which denies (False)."""


def button_value(approval_id: str, shown: int | None) -> str:
    """``ID`` for one action, ``ID:COUNT`` for a group showing ``COUNT`` actions."""
    return approval_id if shown is None else f"{approval_id}:{shown}"


def read_button_value(value: str) -> tuple[str, int | None]:
    """The approval id and the count shown (None: no count, as on a single action's
    message or one posted before buttons carried it)."""
    approval_id, _, shown = value.rpartition(":")
    if approval_id and shown.isdigit() and 0 < int(shown) <= 10**9:
        return approval_id, int(shown)
    return value, None
