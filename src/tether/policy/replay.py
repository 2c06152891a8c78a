"""A candidate policy asked every past decision of a period: which would now be denied and
which newly allowed. Each distinct request is evaluated once, whatever its count."""

from __future__ import annotations

import fnmatch
import itertools
from dataclasses import dataclass

from tether.policy.compiled import CompiledPolicy, PolicyAnswer, default_deny
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
        return self.covers_call(change.now, change.action, change.resource)

    def covers_call(self, now: str, action: str, resource: str) -> bool:
        return (
            now == self.now
            and fnmatch.fnmatchcase(action, self.action)
            and fnmatch.fnmatchcase(resource, self.resource)
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


_Changed = tuple[int, PastDecision, PolicyAnswer | None, bool]
"""(count, past decision, the candidate's answer (None: the built-in model permit), first
of its question): a change, kept light until it is one of the few reported."""


def replay(
    candidate: CompiledPolicy,
    project: str,
    decisions: dict[PastDecision, Tally],
    expected: list[ExpectedChange],
) -> ReplayReport:
    """Every distinct past decision re-decided by ``candidate``; changes biggest first.
    Past decisions alike in what the candidate can tell apart share one answer, and only
    the changes that are reported are worded."""
    models = candidate.models_always_allowed
    by_agent = candidate.tells_agents_apart
    slot_of: dict[tuple[object, ...], int] = {}
    distinct: list[PastDecision] = []
    slots: list[int] = []
    for past in decisions:
        if models and past.action.startswith("model:"):
            slots.append(-1)
            continue
        agent = past.agent if by_agent else ""
        question = (agent, past.action, past.resource, past.tags, past.source)
        slot = slot_of.get(question)
        if slot is None:
            slot = slot_of[question] = len(distinct)
            distinct.append(past)
        slots.append(slot)
    answers = candidate.evaluate_many(_requests(project, distinct))
    denied: list[_Changed] = []
    allowed: list[_Changed] = []
    for (past, tally), slot in zip(decisions.items(), slots, strict=True):
        if slot < 0:
            if not past.permitted:
                allowed.append((tally.count, past, None, True))
            continue
        answer = answers[slot]
        permits = answer.effect != "deny"
        if permits != past.permitted:
            (allowed if permits else denied).append(
                (tally.count, past, answer, distinct[slot] is past)
            )
    denied.sort(key=lambda c: -c[0])
    allowed.sort(key=lambda c: -c[0])

    def change(changed: _Changed, now: str) -> Change:
        count, past, answer, first_asked = changed
        if answer is None:
            reason = "model calls are permitted by the built-in policy"
        elif answer.effect == "deny" and not answer.rules and not first_asked:
            reason = default_deny(_requests(project, [past])[0]).reason
        else:
            reason = answer.reason
        return Change(past.agent, past.action, past.resource, count, now, reason)

    unexpected: list[Change] = []
    unexpected_total = 0
    for changed, now in itertools.chain(
        zip(denied, itertools.repeat("denied")), zip(allowed, itertools.repeat("allowed"))
    ):
        _, past, _, _ = changed
        if expected and any(e.covers_call(now, past.action, past.resource) for e in expected):
            continue
        unexpected_total += 1
        if len(unexpected) < EXAMPLES_KEPT:
            unexpected.append(change(changed, now))
    return ReplayReport(
        decisions=sum(t.count for t in decisions.values()),
        distinct=len(decisions),
        newly_denied=[change(c, "denied") for c in denied[:EXAMPLES_KEPT]],
        newly_allowed=[change(c, "allowed") for c in allowed[:EXAMPLES_KEPT]],
        newly_denied_calls=sum(c[0] for c in denied),
        newly_allowed_calls=sum(c[0] for c in allowed),
        unexpected=unexpected,
        unexpected_total=unexpected_total,
    )
