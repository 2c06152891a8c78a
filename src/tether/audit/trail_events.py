"""The audit events that say what was done to the trail itself, which readiness reads."""

from __future__ import annotations

__all__ = ["AUDIT_EXPORTED", "AUDIT_VERIFIED"]

AUDIT_VERIFIED = "audit:verify"
"""A whole-chain verification on the server (``GET /admin/v1/audit/verify``)."""
AUDIT_EXPORTED = "audit:export"
"""A ``tether audit export --dest`` run that wrote to the operator's storage."""
