"""A session's audit events as a timeline an operator reads during an incident.

Each event becomes one entry with a kind (model turn, tool call, hook decision, cloud call,
MCP call, approval, guard trip, kill, admin), what was decided and by whom, and a duration
where the trail has both ends: a model turn from its decision to its completion (or the
latency upstream reported), a tool call from the hook's PreToolUse decision to the
PostToolUse result with the same ``tool_use_id``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = ["TimelineEntry", "timeline"]


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    kind: str
    ts: str
    result: str
    title: str
    detail: str
    decided_by: str
    duration_ms: float | None
    event: dict[str, Any]


def _ms(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1000


def _kind(event: dict[str, Any]) -> str:
    action: str = event["action"]
    source: str = event["source"]
    if action.startswith("drill:"):
        return "drill"
    if action.startswith("guard:"):
        return "guard trip"
    if event.get("code") in ("session_terminated", "session_paused") or action.startswith(
        "admin:sessions."
    ):
        return "kill"
    if action.startswith("approval") or event.get("result") == "pending":
        return "approval"
    if action.startswith("model:"):
        return "model turn"
    if action.startswith("tool_use:"):
        return "tool use (model)"
    if action.startswith("tool_result"):
        return "tool result"
    if source == "claude_code_hook":
        return "hook event" if action.startswith("hook:") else "tool call"
    if source.startswith("aws") or action.split(":", 1)[0] in ("s3", "ec2", "iam", "sts"):
        return "cloud call"
    if source.startswith("mcp") or action.startswith("mcp:"):
        return "MCP call"
    return source


def _decided_by(event: dict[str, Any]) -> str:
    if event["source"] == "claude_code_hook" and not event["action"].startswith(
        ("hook:", "tool_result")
    ):
        return "PreToolUse hook"
    if event["action"].startswith("tool_result:"):
        return "PostToolUse hook"
    if event["actor"].startswith("admin:"):
        return str(event["actor"])
    return str(event["source"])


def _detail(event: dict[str, Any]) -> str:
    a = event.get("attributes") or {}
    if event["action"].endswith(":completed"):
        parts = [f"HTTP {a.get('status')}"]
        if a.get("model"):
            parts.append(str(a["model"]))
        usage = a.get("usage") or {}
        if usage:
            parts.append(f"{usage.get('input_tokens', 0)} in / {usage.get('output_tokens', 0)} out")
        if a.get("cost_usd") is not None:
            parts.append(f"${a['cost_usd']:.4f}")
        return " · ".join(parts)
    if a.get("input_summary"):
        return str(a["input_summary"])
    if event.get("code"):
        return f"{event['code']}: {event['reason']}"
    return str(event.get("reason") or "")


def timeline(events: list[dict[str, Any]]) -> list[TimelineEntry]:
    """The events in order, each with its kind, decision, decider and duration."""
    started: dict[str, float] = {}
    for e in events:
        use = (e.get("attributes") or {}).get("tool_use_id")
        if use and e["source"] == "claude_code_hook" and not e["action"].startswith("tool_result"):
            started.setdefault(str(use), _ms(e["ts"]))
    entries = []
    for e in events:
        a = e.get("attributes") or {}
        duration: float | None = None
        if e["action"].endswith(":completed") and a.get("latency_ms") is not None:
            duration = float(a["latency_ms"])
        elif e["action"].startswith("tool_result:") and str(a.get("tool_use_id")) in started:
            duration = _ms(e["ts"]) - started[str(a.get("tool_use_id"))]
        entries.append(
            TimelineEntry(
                kind=_kind(e),
                ts=e["ts"],
                result=e["result"],
                title=f"{e['action']} {e['resource']}",
                detail=_detail(e),
                decided_by=_decided_by(e),
                duration_ms=duration,
                event=e,
            )
        )
    return entries
