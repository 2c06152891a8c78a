"""The ``action_id`` of each button tether puts on an approval message; the approval's
id travels in the button's ``value``."""

from __future__ import annotations

__all__ = ["APPROVE", "DECISIONS", "DENY"]

APPROVE = "tether_approval_approve"
DENY = "tether_approval_deny"
DECISIONS = {APPROVE: True, DENY: False}
"""Which action approves (True) and which denies (False)."""
