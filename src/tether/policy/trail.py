"""What the audit trail says policy decided: past decisions folded into distinct requests,
each with how often it was made, so a candidate policy is asked once per distinct request
however long the trail (replay, suggest, lint)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = ["PastDecision", "Tally", "TrailSummary", "fold_decisions"]

POLICY_DENIALS = frozenset({"policy_denied", "command_not_understood"})
"""Denials that were the policy's answer; others (kill, guard, budget) say nothing of it."""
NOT_POLICY = ("guard:", "hook:", "tool_result", "tool_use:", "drill:", "admin:", "approval")


@dataclass(frozen=True, slots=True)
class PastDecision:
    """One distinct request as policy saw it, and whether it was let through."""

    agent: str
    action: str
    resource: str
    tags: tuple[tuple[str, str], ...]
    source: str
    permitted: bool


@dataclass(slots=True)
class Tally:
    count: int = 0
    first_ts: int = 0
    last_ts: int = 0


@dataclass(slots=True)
class TrailSummary:
    decisions: dict[PastDecision, Tally] = field(default_factory=dict)
    rule_matches: dict[str, int] = field(default_factory=dict)
    """How many decisions each rule (by label) took part in."""
    total: int = 0


def _attributes(raw: str) -> dict[str, Any]:
    if '"tags"' not in raw and '"policy_rules"' not in raw:
        return {}
    try:
        loaded = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


def fold_decisions(pages: Iterable[list[tuple[Any, ...]]], summary: TrailSummary) -> None:
    """Adds rows ``(ts, agent, source, action, resource, result, code, attributes)`` to
    ``summary``; rows that were not a policy's answer are skipped."""
    decisions, matches = summary.decisions, summary.rule_matches
    for page in pages:
        for ts, agent, source, action, resource, result, code, raw in page:
            if not agent or action.endswith(":completed") or action.startswith(NOT_POLICY):
                continue
            if result == "deny" and code not in POLICY_DENIALS:
                continue
            attributes = _attributes(raw or "")
            tags = attributes.get("tags")
            key = PastDecision(
                agent,
                action,
                resource,
                tuple(sorted((str(k), str(v)) for k, v in tags.items()))
                if isinstance(tags, dict)
                else (),
                source,
                result != "deny",
            )
            tally = decisions.get(key)
            if tally is None:
                tally = decisions[key] = Tally(0, ts, ts)
            tally.count += 1
            tally.last_ts = ts
            summary.total += 1
            for label in attributes.get("policy_rules") or ():
                matches[str(label)] = matches.get(str(label), 0) + 1
