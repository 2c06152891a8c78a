"""What tether posts to Slack about an approval: the request with its Approve / Deny
buttons, the message replaced by the decision after a click (who, when, through Slack; the
buttons gone) or by the request as it stands now (a group that grew since it was posted),
or a reply only the clicker sees."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from tether.clock import iso_ms, now_ms
from tether.redaction.text import redact_text
from tether.slack.actions import APPROVE, DENY, button_value
from tether.store.approvals import APPROVED, DENIED, ApprovalRecord

__all__ = [
    "ApprovalNames",
    "approval_message",
    "approval_page",
    "decided_message",
    "ephemeral",
    "mrkdwn_escaped",
    "regrown_message",
]

_MRKDWN = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "`": "\u02cb"})


def mrkdwn_escaped(value: Any) -> Any:
    """Text that is data (a resource, a session id, a reason: often the agent's to choose),
    made safe to show in Slack's mrkdwn: ``&``, ``<`` and ``>`` escaped as Slack asks
    (else ``<https://…|Approve here>`` is a link and ``<!channel>`` pings everyone) and a
    backtick turned into a look-alike (it would end the code span it is shown in).
    Strings in dicts and lists too; anything else as it is."""
    if isinstance(value, str):
        return value.translate(_MRKDWN)
    if isinstance(value, dict):
        return {key: mrkdwn_escaped(item) for key, item in value.items()}
    if isinstance(value, list):
        return [mrkdwn_escaped(item) for item in value]
    return value


VERDICTS = {APPROVED: ":white_check_mark: Approved", DENIED: ":no_entry: Denied"}


@dataclass(frozen=True, slots=True)
class ApprovalNames:
    project: str
    agent: str


def ephemeral(text: str) -> dict[str, Any]:
    return {"response_type": "ephemeral", "replace_original": False, "text": text}


def _shown(text: str) -> str:
    return str(mrkdwn_escaped(redact_text(text)))


def _grant(record: ApprovalRecord) -> str:
    if record.state != APPROVED:
        return ""
    scope = (
        f" up to {record.max_uses} actions under `{_shown(record.scope_prefix)}`"
        if record.scope_prefix is not None and record.max_uses is not None
        else ""
    )
    return f";{scope} usable until {iso_ms(record.expires_at)}"


def decided_message(record: ApprovalRecord, names: ApprovalNames) -> dict[str, Any]:
    """The original message, replaced: what was asked, then what became of it."""
    asked = (
        f"tether: agent {_shown(names.agent)} (project {_shown(names.project)}) asked to "
        f"`{_shown(record.action)}` on `{_shown(record.resource)}` in session "
        f"`{_shown(record.session_id)}`: {_shown(record.reason)} (approval {record.id})"
    )
    state = record.state_at(now_ms())
    verdict = VERDICTS.get(state, f":hourglass: Now {state}")
    by = f" by {record.decided_by}" if record.decided_by else ""
    when = f" at {iso_ms(record.decided_at)}" if record.decided_at else ""
    why = f": {_shown(record.decision_reason)}" if record.decision_reason else ""
    decision = f"{verdict}{by}{when}{why}{_grant(record)}"
    return {
        "replace_original": True,
        "text": f"{decision}\n{asked}",
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": asked}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": decision}]},
        ],
    }


def approval_page(public_url: str, approval_id: str) -> str:
    return f"{public_url}/ui/approvals/{quote(approval_id)}"


def approval_message(payload: dict[str, Any], public_url: str | None) -> dict[str, Any]:
    """The request (an ``approval.requested`` payload): Approve / Deny buttons post to
    tether's ``/slack/interactions`` (the Slack app's interactivity request URL), a group's
    carrying the count shown; with a public URL, a link to the dashboard's approval page
    too; the CLI commands are always given. Every value is shown as data
    (``mrkdwn_escaped``)."""
    payload = mrkdwn_escaped(payload)
    approval_id = payload["approval_id"]
    text = (
        f":raised_hand: tether: agent {payload['agent']} (project {payload['project']}) asks to "
        f"`{payload['action']}` on `{payload['resource']}` in session `{payload['session']}`: "
        f"{payload['reason']} (approval {approval_id})"
    )
    shown = None
    if payload.get("prefix"):
        shown = int(payload.get("count", 1))
        text += (
            f"\nA group: deletions under `{payload['prefix']}` in this session join this one "
            f"request (so far {shown}: "
            + ", ".join(f"`{item}`" for item in payload.get("items", []))
            + f"); Approve grants the {shown} counted here (clicked after more joined, it "
            "shows them first), `tether approvals show` counts them, `--max`/`--ttl`/`--prefix` "
            "narrow the grant"
        )
    if public_url:
        text += f"\n<{approval_page(public_url, approval_id)}|Approve or deny in the dashboard>"
    commands = (
        f"Approve: `tether approvals approve {approval_id}`\n"
        f'Deny: `tether approvals deny {approval_id} --reason "…"`'
    )
    buttons = [("Approve", "primary", APPROVE), ("Deny", "danger", DENY)]
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        {
            "type": "actions",
            "block_id": f"tether_approval_{approval_id}",
            "elements": [
                {
                    "type": "button",
                    "text": {"type": "plain_text", "text": label},
                    "style": style,
                    "action_id": action_id,
                    "value": button_value(approval_id, shown),
                }
                for label, style, action_id in buttons
            ],
        },
        {"type": "context", "elements": [{"type": "mrkdwn", "text": commands}]},
    ]
    return {"text": text, "blocks": blocks}


def regrown_message(
    record: ApprovalRecord, names: ApprovalNames, public_url: str | None
) -> dict[str, Any]:
    """A pending group's message replaced by the group as it stands: its count and first
    items now, the buttons carrying the new count."""
    assert record.scope_prefix is not None
    payload = {
        "approval_id": record.id,
        "agent": names.agent,
        "project": names.project,
        "action": record.action,
        "resource": redact_text(f"{record.scope_prefix}*"),
        "session": record.session_id,
        "reason": record.reason,
        "prefix": redact_text(record.scope_prefix),
        "count": record.item_count,
        "items": list(record.attributes.get("items", [])),
    }
    return {"replace_original": True, **approval_message(payload, public_url)}
