"""The policy in force and its shadow asked in one Cedar call give, for every question,
exactly the answers each policy gives alone (effect, reason and rules): shared rules,
a permit in one file that is a forbid in the other, ``@ask``, other tag and argument keys,
the principal's project, a forbid that fails to evaluate."""

from __future__ import annotations

import itertools
import json

import cedarpy
import pytest

from tether.policy.compiled import BASE_POLICY, CompiledPolicy, Rule, compile_policy
from tether.policy.pair import ShadowPair
from tether.policy.request import PolicyRequest
from tether.policy.source import split_statements

LIVE = """\
@id("dev-buckets") permit(principal, action in Action::"s3:*", resource)
  when { resource.arn like "arn:aws:s3:::dev-*" };
@id("files") permit(principal, action in [Action::"file:Read", Action::"file:Write"], resource)
  when { resource.tags.env == "dev" };
@id("prod") @reason("production is off limits")
forbid(principal, action, resource) when { resource.tags.env == "prod" };
@id("shared") @ask("shared buckets are reviewed")
permit(principal, action == Action::"s3:PutObject", resource)
  when { resource.arn like "arn:aws:s3:::shared-*" };
@id("team") permit(principal in Project::"p", action == Action::"git:Push", resource);
@id("query") permit(principal, action == Action::"mcp:query_db", resource)
  when { context.arguments.table like "readonly_*" };
"""
EXTRA_FORBID = """
@id("no-dev-writes") forbid(principal, action == Action::"s3:PutObject", resource)
  when { resource.arn like "arn:aws:s3:::dev-*" };
"""
OTHER_KEYS = """\
@id("dev-buckets") forbid(principal, action in Action::"s3:*", resource)
  when { resource.arn like "arn:aws:s3:::dev-*" };
@id("ml") permit(principal, action in Action::"s3:*", resource)
  when { resource.tags.team == "ml" && context.arguments.mode != "delete" };
@id("bot-only") permit(principal == Agent::"bot", action == Action::"file:Read", resource);
@id("prod-ask") @ask("prod reads are reviewed")
permit(principal, action == Action::"file:Read", resource) when { resource.tags.env == "prod" };
"""
SHAPE = """\
@id("tagged") permit(principal, action in Action::"s3:*", resource)
  when { resource.tags has "team" };
"""

REQUESTS = [
    PolicyRequest(agent, "p", action, resource, tags, source, "s", arguments)
    for agent, (action, resource), tags, source, arguments in itertools.product(
        ("bot", "other"),
        (
            ("s3:GetObject", "arn:aws:s3:::dev-data/x.csv"),
            ("s3:PutObject", "arn:aws:s3:::dev-data/y.json"),
            ("s3:PutObject", "arn:aws:s3:::shared-assets/z"),
            ("s3:DeleteObject", "arn:aws:s3:::prod-data/z"),
            ("file:Read", "/srv/app/a.py"),
            ("file:Write", "/srv/app/a.py"),
            ("git:Push", "https://github.com/o/r"),
            ("mcp:query_db", "mcp://wh/query_db"),
            ("iam:DeleteRole", "arn:aws:iam::1:role/admin"),
        ),
        ({}, {"env": "dev"}, {"env": "prod"}, {"team": "ml"}),
        ("authorize", "mcp_server"),
        ({}, {"table": "readonly_orders", "mode": "delete"}, {"table": "payroll"}),
    )
]


def _alone(source: str) -> list[tuple[str, str, tuple[str, ...]]]:
    policy = compile_policy(source)
    return [(a.effect, a.reason, a.rules) for a in map(policy.evaluate, REQUESTS)]


@pytest.mark.parametrize(
    ("candidate", "shared"),
    [(LIVE + EXTRA_FORBID, True), (OTHER_KEYS, True), (SHAPE, False), (LIVE, True)],
    ids=["extra-forbid", "other-keys", "record-shape", "same"],
)
def test_answers_together_are_the_answers_alone(candidate: str, shared: bool) -> None:
    pair = ShadowPair(compile_policy(LIVE), compile_policy(candidate))
    assert pair.shared_call is shared
    expected = list(zip(_alone(LIVE), _alone(candidate), strict=True))
    for _ in range(2):  # asked, then remembered by each version
        together = [pair.evaluate(request) for request in REQUESTS]
        got = [((a.effect, a.reason, a.rules), (b.effect, b.reason, b.rules)) for a, b in together]
        assert got == expected
    assert {e for (e, _, _), _ in expected} == {"allow", "deny", "ask"}
    differences = sum(live[0] != shadow[0] for live, shadow in expected)
    assert differences > 0 or candidate == LIVE


def test_an_answer_remembered_by_one_side_is_not_asked_again() -> None:
    live, candidate = compile_policy(LIVE), compile_policy(LIVE + EXTRA_FORBID)
    request = REQUESTS[1]
    first = live.evaluate(request)
    pair = ShadowPair(live, candidate)
    assert pair.evaluate(request) == (first, compile_policy(LIVE + EXTRA_FORBID).evaluate(request))
    assert pair.evaluate(request)[0] is first


def _unchecked(source: str) -> CompiledPolicy:
    """A policy compiled without schema validation, so a rule can fail at evaluation
    (validated policies practically cannot: this is the fail-closed path)."""
    statements = split_statements(source)
    ests = [
        next(iter(json.loads(cedarpy.policies_to_json_str(s.text))["staticPolicies"].values()))
        for s in statements + split_statements(BASE_POLICY)
    ]
    rules = (
        *(Rule(str(e["effect"]), i + 1, f"r{i}", None, None) for i, e in enumerate(ests[:-1])),
        Rule("permit", 0, "tether:model-access", None, None),
    )
    handle = cedarpy.PolicySet.from_str(f"{source}\n{BASE_POLICY}")
    return CompiledPolicy(source, handle, rules, ests=tuple(ests))


def test_a_forbid_that_fails_to_evaluate_denies_in_either_file() -> None:
    broken = 'forbid(principal, action, resource) when { resource.owner == "x" };\n'
    fine = "permit(principal, action, resource);\n"
    request = PolicyRequest("bot", "p", "file:Read", "/srv/a")
    for live_source, candidate_source in ((fine + broken, fine), (fine, broken + fine)):
        pair = ShadowPair(_unchecked(live_source), _unchecked(candidate_source))
        assert pair.shared_call
        expected = (
            _unchecked(live_source).evaluate(request),
            _unchecked(candidate_source).evaluate(request),
        )
        assert pair.evaluate(request) == expected
        assert {a.effect for a in expected} == {"allow", "deny"}
        assert any("could not be evaluated" in a.reason for a in expected)
