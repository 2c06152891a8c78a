"""What a check answers when it objects: a refusal, or a wait for a human. Stages return
them and so do the kill switch and the in-flight stream registry, which sit below the
pipeline; front doors render them in their protocol."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tether.redaction.text import redact_text

__all__ = ["Deny", "Pending", "Verdict"]


@dataclass(frozen=True, slots=True)
class Deny:
    """A refusal. Its reason is shown to the agent, so credentials in it (a command or a
    URL it quotes) are blanked here, by the redactor the audit trail uses."""

    code: str
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason", redact_text(self.reason))


@dataclass(frozen=True, slots=True)
class Pending:
    approval_id: str
    reason: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason", redact_text(self.reason))


Verdict = Deny | Pending
