"""What happened after an allowed action was carried out: the input to ``Pipeline.settle``."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from tether.pricing.usage import Usage

__all__ = ["NOT_SENT", "Outcome", "ToolResult", "ToolUse"]

NOT_SENT = "not_sent"
"""An allowed action that was not carried out: its call never left tether (refused as a
whole for another of its actions, or it could not be signed or sent). A grant it spent
is given back."""


@dataclass(frozen=True, slots=True)
class ToolUse:
    """A ``tool_use`` block the model emitted."""

    id: str
    name: str
    input: Any
    fingerprint: int | None = None
    """The guards' fingerprint of (name, input), when computed where the input was read
    (a large hook body, in the heavy-work lane): then ``input`` may be left empty."""


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What a tool answered: a ``tool_result`` block the agent sent back, or a PostToolUse
    hook's ``tool_response``. ``digest`` tells equal answers apart from changing ones."""

    tool_use_id: str
    is_error: bool
    digest: int = 0


@dataclass(slots=True)
class Outcome:
    """``result`` is ``ok``, ``error`` (upstream or network), ``abandoned`` (the client left),
    ``cut`` (the kill switch stopped it) or ``not_sent`` (``NOT_SENT``). Stages fill
    ``cost_usd`` while settling."""

    result: str
    status: int
    latency_ms: float
    model: str | None = None
    usage: Usage | None = None
    tool_uses: list[ToolUse] = field(default_factory=list)
    detail: str = ""
    upstream_request_id: str | None = None
    upstream_reached: bool = False
    """The call reached upstream (it answered, or the connection failed on the way): only
    then does a failure count against the agent's retries."""
    upstream_overloaded: bool = False
    """Upstream answered 429/5xx or could not be reached: the circuit breaker counts these."""
    retry_after_seconds: float | None = None
    usage_final: bool = True
    """Upstream reported the call's whole usage. False for a cut answer (the client left,
    upstream broke off, tether or a budget stopped it, a 200 that is not a message):
    ``usage`` is then only what was seen, and the rest is charged at its worst case
    (``pricing.cut``)."""
    part_usages: list[tuple[str, Usage]] = field(default_factory=list)
    """A message batch's requests: each one's model and the usage upstream reported,
    priced one by one (``usage`` is their sum)."""
    cost_usd: float | None = None
    price_known: bool = True

    @classmethod
    def of_read(cls, status: int, started: float, detail: str) -> Outcome:
        """A relayed read's outcome (nothing to charge): ``ok`` on a 2xx, ``status`` 0
        when upstream was not reached; ``started`` a ``time.perf_counter()`` reading."""
        return cls(
            result="ok" if 200 <= status < 300 else "error",
            status=status,
            latency_ms=(time.perf_counter() - started) * 1000,
            detail=detail,
            upstream_reached=status != 0,
        )
