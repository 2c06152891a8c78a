"""What tether posts back to Slack after a click: the approval message replaced by the
decision (who, when, through Slack; the buttons gone), or a reply only the clicker sees."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tether.clock import iso_ms, now_ms
from tether.redaction.text import redact_text
from tether.store.approvals import APPROVED, DENIED, ApprovalRecord

__all__ = ["ApprovalNames", "decided_message", "ephemeral"]

VERDICTS = {APPROVED: ":white_check_mark: Approved", DENIED: ":no_entry: Denied"}


@dataclass(frozen=True, slots=True)
class ApprovalNames:
    project: str
    agent: str


def ephemeral(text: str) -> dict[str, Any]:
    return {"response_type": "ephemeral", "replace_original": False, "text": text}


def _grant(record: ApprovalRecord) -> str:
    if record.state != APPROVED:
        return ""
    scope = (
        f" up to {record.max_uses} actions under `{redact_text(record.scope_prefix)}`"
        if record.scope_prefix is not None and record.max_uses is not None
        else ""
    )
    return f";{scope} usable until {iso_ms(record.expires_at)}"


def decided_message(record: ApprovalRecord, names: ApprovalNames) -> dict[str, Any]:
    """The original message, replaced: what was asked, then what became of it."""
    asked = (
        f"tether: agent {names.agent} (project {names.project}) asked to `{record.action}` on "
        f"`{redact_text(record.resource)}` in session `{record.session_id}`: "
        f"{redact_text(record.reason)} (approval {record.id})"
    )
    state = record.state_at(now_ms())
    verdict = VERDICTS.get(state, f":hourglass: Now {state}")
    by = f" by {record.decided_by}" if record.decided_by else ""
    when = f" at {iso_ms(record.decided_at)}" if record.decided_at else ""
    why = f": {redact_text(record.decision_reason)}" if record.decision_reason else ""
    decision = f"{verdict}{by}{when}{why}{_grant(record)}"
    return {
        "replace_original": True,
        "text": f"{decision}\n{asked}",
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": asked}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": decision}]},
        ],
    }
