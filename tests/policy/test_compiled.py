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


def test_a_tool_call_s_arguments_are_in_the_context() -> None:
    policy = compile_policy(
        'permit(principal, action == Action::"mcp:query_db", resource)\n'
        '  when { context.arguments.table like "readonly_*" };\n'
        'permit(principal, action == Action::"mcp:echo", resource);\n'
    )

    def answer(action: str, **arguments: str) -> str:
        request = PolicyRequest(
            "bot", "p", action, f"mcp://wh/{action[4:]}", source="mcp_server", arguments=arguments
        )
        return policy.evaluate(request).effect

    assert answer("mcp:query_db", table="readonly_orders") == "allow"
    assert answer("mcp:query_db", table="payroll") == "deny"
    assert answer("mcp:query_db") == "deny"
    assert answer("mcp:echo", text="hi") == "allow"
    assert policy.may_permit_with_arguments("mcp:query_db")
    assert not policy.may_permit_with_arguments("mcp:export_secrets")
