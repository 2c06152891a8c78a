"""What a receiver gets: Slack's ``{"text", "blocks"}``, or signed JSON for generic hooks.

Generic deliveries carry ``X-Tether-Signature: sha256=HMAC(secret, timestamp + "." + body)``,
``X-Tether-Timestamp`` and ``X-Tether-Delivery`` (the outbox id, for de-duplication).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import orjson

from tether.slack.messages import approval_message, approval_page, mrkdwn_escaped

__all__ = ["generic_request", "sign", "slack_request"]


def _summary(payload: dict[str, Any]) -> str:
    return (
        f":warning: tether: the {payload['budget']['description']} is at "
        f"{payload['percent_used']}% (${payload['spent_usd']:.2f} of ${payload['limit_usd']:.2f}; "
        f"{payload['threshold_percent']}% threshold, period {payload['budget']['period_key']})"
    )


def _lines(lines: list[str], empty: str) -> str:
    return "\n".join(lines) or empty


def _guard_body(payload: dict[str, Any], _public_url: str | None) -> dict[str, Any]:
    payload = mrkdwn_escaped(payload)
    text = (
        f":rotating_light: tether: guard `{payload['guard']}` tripped for agent {payload['agent']} "
        f"(project {payload['project']}) in session `{payload['session']}`: {payload['reason']} "
        f"— {payload['outcome']}"
    )
    return {"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]}


def _task_body(payload: dict[str, Any], _public_url: str | None) -> dict[str, Any]:
    payload = mrkdwn_escaped(payload)
    text = f":rotating_light: tether: {payload['summary']}"
    return {"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]}


def slack_request(
    event: str, payload: dict[str, Any], delivery_id: str, public_url: str | None = None
) -> tuple[bytes, dict[str, str]]:
    renderers = {
        "approval.requested": approval_message,
        "guard.tripped": _guard_body,
        "task.needs_attention": _task_body,
        "task.drift": _task_body,
        "drill.failed": _task_body,
    }
    body = renderers.get(event, _budget_body)(payload, public_url)
    return orjson.dumps(body), {
        "Content-Type": "application/json",
        "X-Tether-Delivery": delivery_id,
    }


def _budget_body(payload: dict[str, Any], _public_url: str | None) -> dict[str, Any]:
    payload = mrkdwn_escaped(payload)
    tops = _lines(
        [
            f"• session `{s['session']}` ({s['agent']}): ${s['cost_usd']:.2f}, {s['state']}"
            for s in payload.get("top_sessions", [])
        ],
        "• no session spend recorded yet",
    )
    agents = _lines(
        [
            f"• {a['agent']}: ${a['cost_usd_today']:.2f} today"
            for a in payload.get("top_agents", [])
        ],
        "• no agent spend recorded yet",
    )
    return {
        "text": _summary(payload),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": _summary(payload)}},
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": f"*Project*\n{payload['project']}"},
                    {"type": "mrkdwn", "text": f"*Budget*\n{payload['budget']['description']}"},
                    {"type": "mrkdwn", "text": f"*Spent*\n${payload['spent_usd']:.2f}"},
                    {"type": "mrkdwn", "text": f"*Limit*\n${payload['limit_usd']:.2f}"},
                ],
            },
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": f"*Top agents*\n{agents}\n*Top sessions*\n{tops}",
                },
            },
        ],
    }


def sign(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def generic_request(
    payload: dict[str, Any], delivery_id: str, secret: str | None, public_url: str | None = None
) -> tuple[bytes, dict[str, str]]:
    """An approval carries ``approval_url`` (its dashboard page) when tether knows its
    public URL: a receiver that is not Slack can link people to the decision."""
    if public_url and payload.get("event") == "approval.requested" and "approval_id" in payload:
        payload = {**payload, "approval_url": approval_page(public_url, payload["approval_id"])}
    body = orjson.dumps({**payload, "delivery_id": delivery_id})
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "X-Tether-Delivery": delivery_id,
        "X-Tether-Timestamp": timestamp,
    }
    if secret:
        headers["X-Tether-Signature"] = sign(secret, timestamp, body)
    return body, headers
