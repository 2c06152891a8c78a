"""The compiler's own contracts: statements are found as Cedar numbers them (comments and
strings with ``;`` included), each rule's effect and annotations come from Cedar itself."""

from __future__ import annotations

import json

import cedarpy

from tether.policy.compiled import compile_policy
from tether.policy.request import PolicyRequest

TRICKY = """\
// a comment; with a semicolon and forbid(principal, action, resource);
@id("one") permit(principal, action, resource)  // not a forbid(
when { resource.arn like "a;b*" };

@reason("no \\"quotes\\"; please")
forbid(principal, action == Action::"s3:DeleteBucket", resource);
"""


def test_statements_and_effects_match_cedar() -> None:
    source = TRICKY
    compiled = compile_policy(source)
    cedar = json.loads(cedarpy.policies_to_json_str(source))["staticPolicies"]
    ours = [(r.effect, r.name, r.reason) for r in compiled.rules[:-1]]
    assert ours == [
        ("permit", "one", None),
        ("forbid", None, 'no "quotes"; please'),
    ]
    assert [p["effect"] for p in cedar.values()] == [effect for effect, _, _ in ours]


def test_rule_lines_point_at_the_statement() -> None:
    source = TRICKY
    assert [r.line for r in compile_policy(source).rules[:-1]] == [2, 5]


def test_forbid_wins_and_names_its_reason() -> None:
    source = TRICKY
    answer = compile_policy(source).evaluate(
        PolicyRequest("a", "p", "s3:DeleteBucket", "a;b-bucket")
    )
    assert answer.effect == "deny"
    assert 'no "quotes"; please' in answer.reason
