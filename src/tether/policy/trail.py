"""What the audit trail says policy decided: past decisions folded into distinct requests,
each with how often it was made, so a candidate policy is asked once per distinct request
however long the trail (replay, suggest, lint)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, cast

import orjson

__all__ = ["PastDecision", "Tally", "TrailSummary", "fold_decisions", "fold_trail"]

POLICY_DENIALS = frozenset({"policy_denied", "command_not_understood"})
"""Denials that were the policy's answer; others (kill, guard, budget) say nothing of it."""
PARSED_KEPT = 10_000
NOT_POLICY = ("guard:", "hook:", "tool_result", "tool_use:", "drill:", "admin:", "approval")


class PastDecision(NamedTuple):
    """One distinct request as policy saw it, and whether it was let through. A named
    tuple: a trail folds into hundreds of thousands of them, made and hashed in C."""

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


_Key = tuple[str, str, str, tuple[tuple[str, str], ...], str, bool]
"""A ``PastDecision``'s fields as a plain tuple: equal to it and hashed alike, so a row
finds its decision without a ``PastDecision`` being made for it."""


@dataclass(slots=True)
class TrailSummary:
    decisions: dict[PastDecision, Tally] = field(default_factory=dict)
    total: int = 0
    parsed: dict[str | None, tuple[tuple[tuple[str, str], ...], tuple[str, ...]]] = field(
        default_factory=dict
    )
    """Tags and rule labels by the attributes' JSON text: most rows repeat a few texts."""
    labelled: dict[tuple[str, ...], int] = field(default_factory=dict)
    """How many decisions each list of rule labels was recorded on."""

    @property
    def rule_matches(self) -> dict[str, int]:
        """How many decisions each rule (by label) took part in."""
        matches: dict[str, int] = {}
        for labels, count in self.labelled.items():
            for label in labels:
                matches[label] = matches.get(label, 0) + count
        return matches


def _attributes(raw: str) -> dict[str, Any]:
    if '"tags"' not in raw and '"policy_rules"' not in raw:
        return {}
    try:
        loaded = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _tags_and_rules(raw: str) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...]]:
    attributes = _attributes(raw)
    tags = attributes.get("tags")
    return (
        tuple(sorted((str(k), str(v)) for k, v in tags.items())) if isinstance(tags, dict) else (),
        tuple(str(label) for label in attributes.get("policy_rules") or ()),
    )


def fold_decisions(pages: Iterable[Sequence[Sequence[Any]]], summary: TrailSummary) -> None:
    """Adds rows ``(ts, agent, source, action, resource, result, code, attributes)``, in
    any order, to ``summary``; rows that were not a policy's answer are skipped. The loop
    does only what each row needs (a million rows go through it): a plain tuple key, a
    ``PastDecision`` made only for a request not seen before."""
    parsed, labelled = summary.parsed, summary.labelled
    index = cast("dict[_Key, Tally]", summary.decisions)
    make = PastDecision._make
    total = 0
    for page in pages:
        for ts, agent, source, action, resource, result, code, raw in page:
            if not agent or action.endswith(":completed") or action.startswith(NOT_POLICY):
                continue
            permitted = result != "deny"
            if not permitted and code not in POLICY_DENIALS:
                continue
            seen = parsed.get(raw)
            if seen is None:
                seen = _tags_and_rules(raw or "")
                if len(parsed) >= PARSED_KEPT:
                    parsed.clear()
                parsed[raw] = seen
            tags, labels = seen
            key = (agent, action, resource, tags, source, permitted)
            tally = index.get(key)
            if tally is None:
                index[make(key)] = Tally(1, ts, ts)
            else:
                tally.count += 1
                if ts < tally.first_ts:
                    tally.first_ts = ts
                elif ts > tally.last_ts:
                    tally.last_ts = ts
            if labels:
                labelled[labels] = labelled.get(labels, 0) + 1
            total += 1
    summary.total += total


async def fold_trail(
    pages: AsyncIterator[Sequence[Sequence[Any]]], summary: TrailSummary, agent: str | None = None
) -> None:
    """Folds a trail read a page at a time, off the event loop; the next page is read
    while the last one is folded (``agent``: only that agent's rows)."""
    following = asyncio.ensure_future(anext(pages, None))
    while (page := await following) is not None:
        following = asyncio.ensure_future(anext(pages, None))
        rows = [r for r in page if r[1] == agent] if agent else page
        await asyncio.to_thread(fold_decisions, [rows], summary)
