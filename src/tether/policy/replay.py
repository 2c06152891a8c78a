"""A candidate policy asked every past decision of a period: which would now be denied and
which newly allowed. Each distinct request is evaluated once, whatever its count."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from tether.policy.compiled import CompiledPolicy, default_deny
from tether.policy.request import PolicyRequest
from tether.policy.trail import PastDecision, Tally

__all__ = ["Change", "ExpectedChange", "ReplayReport", "replay"]

EXAMPLES_KEPT = 200


@dataclass(frozen=True, slots=True)
class Change:
    agent: str
    action: str
    resource: str
    count: int
    now: str
    """``denied`` or ``allowed``: what the candidate answers where the trail says otherwise."""
    reason: str


@dataclass(frozen=True, slots=True)
class ExpectedChange:
    """``denied s3:Delete* arn:aws:s3:::prod/*``: changes of this kind are intended."""

    now: str
    action: str
    resource: str = "*"

    @classmethod
    def parse(cls, text: str) -> ExpectedChange:
        parts = text.split()
        if len(parts) not in (2, 3) or parts[0] not in ("denied", "allowed"):
            raise ValueError(
                f"--expect {text!r}: write 'denied|allowed ACTION_GLOB [RESOURCE_GLOB]', "
                "e.g. 'denied s3:Delete* arn:aws:s3:::prod/*'"
            )
        return cls(*parts)

    def covers(self, change: Change) -> bool:
        return (
            change.now == self.now
            and fnmatch.fnmatchcase(change.action, self.action)
            and fnmatch.fnmatchcase(change.resource, self.resource)
        )


@dataclass(slots=True)
class ReplayReport:
    decisions: int
    distinct: int
    newly_denied: list[Change]
    newly_allowed: list[Change]
    newly_denied_calls: int
    newly_allowed_calls: int
    unexpected: list[Change]
    unexpected_total: int


def _requests(project: str, pasts: list[PastDecision]) -> list[PolicyRequest]:
    return [
        PolicyRequest(p.agent, project, p.action, p.resource, dict(p.tags), p.source) for p in pasts
    ]


def _question(past: PastDecision, by_agent: bool) -> tuple[object, ...]:
    """What the candidate can tell apart: past decisions alike in it share one answer."""
    return (past.agent if by_agent else "", past.action, past.resource, past.tags, past.source)


def replay(
    candidate: CompiledPolicy,
    project: str,
    decisions: dict[PastDecision, Tally],
    expected: list[ExpectedChange],
) -> ReplayReport:
    """Every distinct past decision re-decided by ``candidate``; changes biggest first."""
    denied: list[Change] = []
    allowed: list[Change] = []
    models = candidate.models_always_allowed
    by_agent = candidate.tells_agents_apart
    first: dict[tuple[object, ...], PastDecision] = {}
    for past in decisions:
        if not (models and past.action.startswith("model:")):
            first.setdefault(_question(past, by_agent), past)
    answers = dict(
        zip(first, candidate.evaluate_many(_requests(project, list(first.values()))), strict=True)
    )
    for past, tally in decisions.items():
        answer = None
        if not (models and past.action.startswith("model:")):
            question = _question(past, by_agent)
            answer = answers[question]
            if answer.effect == "deny" and not answer.rules and first[question] is not past:
                answer = default_deny(_requests(project, [past])[0])
        permits = answer is None or answer.effect != "deny"
        if permits == past.permitted:
            continue
        reason = answer.reason if answer else "model calls are permitted by the built-in policy"
        change = Change(
            past.agent,
            past.action,
            past.resource,
            tally.count,
            "allowed" if permits else "denied",
            reason,
        )
        (allowed if permits else denied).append(change)
    denied.sort(key=lambda c: -c.count)
    allowed.sort(key=lambda c: -c.count)
    unexpected = [c for c in denied + allowed if not any(e.covers(c) for e in expected)]
    return ReplayReport(
        decisions=sum(t.count for t in decisions.values()),
        distinct=len(decisions),
        newly_denied=denied[:EXAMPLES_KEPT],
        newly_allowed=allowed[:EXAMPLES_KEPT],
        newly_denied_calls=sum(c.count for c in denied),
        newly_allowed_calls=sum(c.count for c in allowed),
        unexpected=unexpected[:EXAMPLES_KEPT],
        unexpected_total=len(unexpected),
    )
