"""``tether audit replay``: one session's events as a timeline people can read."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.table import Table

from tether.cli.output import console

__all__ = ["print_timeline"]


def _moment(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(event["ts"]).replace("Z", "+00:00"))


def _detail(event: dict[str, Any]) -> str:
    attributes = event.get("attributes") or {}
    if event["action"].startswith("tool_use:"):
        return str(attributes.get("input_summary", ""))
    if event["action"].endswith(":completed"):
        parts = [f"HTTP {attributes.get('status')}"]
        if attributes.get("cost_usd") is not None:
            parts.append(f"${attributes['cost_usd']:.4f}")
        if attributes.get("latency_ms") is not None:
            parts.append(f"{attributes['latency_ms']:.0f} ms")
        return ", ".join(parts)
    if event.get("code"):
        return f"{event['code']}: {event.get('reason', '')}"
    return str(event.get("reason") or "")


def print_timeline(session: str, events: list[dict[str, Any]]) -> None:
    start = _moment(events[0])
    agents = sorted({e["agent"] for e in events if e.get("agent")})
    table = Table(
        title=f"session {session} ({', '.join(agents) or 'no agent'}), "
        f"{len(events)} events from {events[0]['ts']}"
    )
    for column in ("#", "+time", "result", "action", "resource", "detail"):
        table.add_column(column)
    for event in events:
        offset = (_moment(event) - start).total_seconds()
        table.add_row(
            str(event.get("seq") or ""),
            f"+{offset:.3f}s",
            event["result"],
            event["action"],
            event["resource"],
            _detail(event),
        )
    console.print(table)
