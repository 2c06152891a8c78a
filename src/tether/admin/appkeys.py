"""Typed keys for what the admin handlers read from the application."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tether.audit.event import AuditEvent
from tether.identity.refusal_windows import RefusalWindows
from tether.records.fleet import AdminToken
from tether.runtime import Runtime

__all__ = [
    "ADMIN_CALL",
    "ADMIN_REFUSALS",
    "ADMIN_TOKEN",
    "GATE_NOTE",
    "RUNTIME",
    "AdminCall",
    "GateNote",
    "caller_of",
    "runtime_of",
]


@dataclass(slots=True)
class GateNote:
    """What a handler says of its own call, recorded in the gate's one event for it
    instead of ``admin:<route>`` (``audit:export``, ``audit:verify``: readiness reads them)."""

    action: str
    result: str = "ok"
    reason: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class AdminCall:
    """The gate's audit event for this call, and what the handler did of the gate's work:
    committed the event with its own change (``recorded``), or applied its change to this
    process itself (``applied_here``: no change-feed catch-up before answering)."""

    event: AuditEvent
    recorded: bool = False
    applied_here: bool = False


RUNTIME = web.AppKey("runtime", Runtime)
ADMIN_REFUSALS = web.AppKey("admin_refusals", RefusalWindows)
"""Requests refused for want of a valid admin token, sampled per address."""
ADMIN_TOKEN = web.RequestKey("admin_token", AdminToken)
GATE_NOTE = web.RequestKey("gate_note", GateNote)
ADMIN_CALL = web.RequestKey("admin_call", AdminCall)


def runtime_of(request: web.Request) -> Runtime:
    return request.config_dict[RUNTIME]


def caller_of(request: web.Request) -> AdminToken:
    token: AdminToken = request[ADMIN_TOKEN]
    return token
