"""What a reviewer would flag in a policy: permits on every resource or of every action,
deletions permitted with no human in the loop, rules that matched nothing for days, and
forbids that no permit can reach (default deny already covers them)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import cedarpy

from tether.policy.actions import DELETE, MODEL, classify
from tether.policy.compiled import compile_policy
from tether.policy.source import Statement, split_statements

__all__ = ["Finding", "lint_policy"]


@dataclass(frozen=True, slots=True)
class Finding:
    severity: str
    """``error`` (a deploy gate should stop) or ``warning``."""
    code: str
    line: int
    rule: str
    message: str


def _est(statement: Statement) -> dict[str, Any]:
    policies = json.loads(cedarpy.policies_to_json_str(statement.text))["staticPolicies"]
    return dict(next(iter(policies.values()))) if policies else {}


def _actions(est: dict[str, Any]) -> list[str] | None:
    """The action ids a rule's scope names; None for every action."""
    scope = est.get("action", {})
    if scope.get("op") == "All":
        return None
    entities = scope.get("entities") or [scope.get("entity", {})]
    return [str(e.get("id", "")) for e in entities]


def _reads_resource(est: dict[str, Any]) -> bool:
    if est.get("resource", {}).get("op") not in (None, "All", "is"):
        return True
    body = json.dumps(est.get("conditions", []), separators=(",", ":"))
    return '{"Var":"resource"}' in body


def _covers_deletions(actions: list[str] | None) -> bool:
    if actions is None:
        return True
    return any(a == DELETE or a.endswith(":*") or classify(a).is_deletion for a in actions)


def _overlaps(forbidden: list[str] | None, permitted: list[str] | None) -> bool:
    if forbidden is None or permitted is None:
        return True
    for f in forbidden:
        for p in permitted:
            if f == p or f in classify(p).groups or p in classify(f).groups:
                return True
            if (f.endswith(":*") and p.startswith(f[:-1])) or (
                p.endswith(":*") and f.startswith(p[:-1])
            ):
                return True
    return False


def lint_policy(
    source: str,
    *,
    deletion_approval: bool = True,
    rule_matches: dict[str, int] | None = None,
    days: int = 30,
) -> list[Finding]:
    """Findings, most severe first. ``rule_matches`` (rule label → decisions it took part
    in over ``days``) enables the unused-rule check."""
    compiled = compile_policy(source)
    findings: list[Finding] = []
    permits: list[list[str] | None] = [[MODEL]]
    forbids: list[tuple[tuple[int, str], list[str] | None]] = []
    for statement, rule in zip(split_statements(source), compiled.rules, strict=False):
        est = _est(statement)
        actions = _actions(est)
        where: tuple[int, str] = (rule.line, rule.label)
        if rule.effect == "forbid":
            forbids.append((where, actions))
            continue
        permits.append(actions)
        scoped = _reads_resource(est)
        if actions is None and not scoped:
            findings.append(
                Finding(
                    "error",
                    "permit_everything",
                    *where,
                    "permits every action on every resource: scope it to actions and resources",
                )
            )
        elif not scoped:
            findings.append(
                Finding(
                    "warning",
                    "unscoped_resource",
                    *where,
                    'permits on every resource: add `when { resource.arn like "…" }` or a tag',
                )
            )
        elif actions is None:
            findings.append(
                Finding(
                    "warning",
                    "wildcard_action",
                    *where,
                    'permits every action: name the actions (or groups like Action::"read")',
                )
            )
        if _covers_deletions(actions) and not rule.ask and not deletion_approval:
            findings.append(
                Finding(
                    "error",
                    "deletion_without_approval",
                    *where,
                    "permits deletions and the project's deletion approvals are off: add "
                    '@ask("…") or turn deletion approvals on',
                )
            )
        if rule_matches is not None and rule_matches.get(rule.label, 0) == 0:
            findings.append(
                Finding(
                    "warning",
                    "unused_rule",
                    *where,
                    f"matched no decision in the last {days} days: remove it if it is not needed",
                )
            )
    for where, actions in forbids:
        if not any(_overlaps(actions, permitted) for permitted in permits):
            findings.append(
                Finding(
                    "warning",
                    "unreachable_forbid",
                    *where,
                    "no permit allows these actions, so default deny already refuses them",
                )
            )
    findings.sort(key=lambda f: (f.severity != "error", f.line))
    return findings
