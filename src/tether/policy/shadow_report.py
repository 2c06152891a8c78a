"""Where a project's shadow policy disagreed with the policy in force: the decision events
that carry a ``shadow`` attribute, grouped by direction and by the shadow's rule, each
group with a count and a few examples."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = ["DIRECTIONS", "Difference", "ShadowReport", "fold_differences"]

DIRECTIONS = ("would_deny", "would_allow", "would_ask")
EXAMPLES_KEPT = 3
DEFAULT_DENY = "(no rule permits it: default deny)"


@dataclass(frozen=True, slots=True)
class Example:
    ts: int
    agent: str
    action: str
    resource: str
    live: str
    """What the policy in force answered: allow, ask or deny."""
    reason: str
    """Why the shadow would have decided otherwise."""


@dataclass(slots=True)
class Difference:
    direction: str
    rule: str
    count: int = 0
    examples: list[Example] = field(default_factory=list)


@dataclass(slots=True)
class ShadowReport:
    groups: dict[tuple[str, str], Difference] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DIRECTIONS, 0))

    def ordered(self) -> list[Difference]:
        """Biggest groups first, would-deny before would-allow on ties."""
        return sorted(
            self.groups.values(), key=lambda d: (-d.count, DIRECTIONS.index(d.direction), d.rule)
        )


def _shadow(raw: str) -> dict[str, Any] | None:
    if '"shadow"' not in raw:
        return None
    try:
        loaded = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    shadow = loaded.get("shadow") if isinstance(loaded, dict) else None
    return shadow if isinstance(shadow, dict) else None


def fold_differences(pages: Iterable[list[tuple[Any, ...]]], report: ShadowReport) -> None:
    """Adds decision rows ``(ts, agent, source, action, resource, result, code,
    attributes, seq)`` to ``report``; rows without a shadow difference are skipped."""
    for page in pages:
        for ts, agent, _source, action, resource, _result, _code, raw, _seq in page:
            shadow = _shadow(raw or "")
            if shadow is None:
                continue
            direction = f"would_{shadow.get('decision')}"
            if direction not in report.calls:
                continue
            rules = [str(r) for r in shadow.get("rules") or ()]
            rule = ", ".join(rules) if rules else DEFAULT_DENY
            group = report.groups.get((direction, rule))
            if group is None:
                group = report.groups[(direction, rule)] = Difference(direction, rule)
            group.count += 1
            report.calls[direction] += 1
            if len(group.examples) < EXAMPLES_KEPT:
                group.examples.append(
                    Example(
                        ts,
                        agent or "",
                        action,
                        resource,
                        str(shadow.get("live", "")),
                        str(shadow.get("reason", "")),
                    )
                )
