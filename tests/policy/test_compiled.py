"""The compiler's own contracts: statements are found as Cedar numbers them (comments and
strings with ``;`` included), each rule's effect and annotations come from Cedar itself."""

from __future__ import annotations

import json

import cedarpy

from tether.policy.compiled import ANSWERS_KEPT, ENTITIES_KEPT, compile_policy
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


def test_agents_share_an_answer_only_when_no_rule_looks_at_the_principal() -> None:
    blind = compile_policy('permit(principal, action == Action::"s3:GetObject", resource);')
    named = compile_policy(
        'permit(principal == Agent::"a1", action == Action::"s3:GetObject", resource);'
    )
    by_project = compile_policy(
        'permit(principal, action, resource) when { principal.project == "p" };'
    )
    assert not blind.tells_agents_apart
    assert named.tells_agents_apart and by_project.tells_agents_apart

    asks = [
        PolicyRequest(agent, "p", action, "arn:aws:s3:::b/k")
        for agent in ("a1", "a2")
        for action in ("s3:GetObject", "s3:PutObject")
    ]
    for compiled in (blind, named):
        many = compiled.evaluate_many(asks)
        one_by_one = [compiled.evaluate(ask) for ask in reversed(asks)][::-1]
        assert many == one_by_one
    assert [a.effect for a in named.evaluate_many(asks)] == ["allow", "deny", "deny", "deny"]
    denied = blind.evaluate_many(asks)
    assert "for agent a1" in denied[1].reason and "for agent a2" in denied[3].reason


def test_entities_kept_across_calls_still_tell_tags_agents_and_arguments_apart() -> None:
    """The parsed entities are kept per agent, action, resource and tags; a new argument
    reuses them, and a change in any of those gets its own."""
    compiled = compile_policy(
        'permit(principal == Agent::"bot", action == Action::"mcp:lookup", resource)\n'
        '  when { resource.tags.env == "dev" && context.arguments.key like "k*" };'
    )

    def effect(agent: str, env: str, key: str) -> str:
        request = PolicyRequest(
            agent, "p", "mcp:lookup", "mcp://wh/lookup", tags={"env": env}, arguments={"key": key}
        )
        return compiled.evaluate(request).effect

    assert [effect("bot", "dev", f"k{n}") for n in range(3)] == ["allow"] * 3
    assert effect("bot", "dev", "x1") == "deny"
    assert effect("bot", "prod", "k1") == "deny"
    assert effect("other", "dev", "k1") == "deny"
    assert effect("bot", "dev", "k9") == "allow"


def test_past_its_bound_a_policy_forgets_its_oldest_answers_one_at_a_time() -> None:
    policy = compile_policy(
        'permit(principal, action == Action::"s3:GetObject", resource)\n'
        '  when { principal.project == "p" };'
    )
    asked = [
        PolicyRequest(f"agent-{n}", "p", "s3:GetObject", "arn:aws:s3:::b/k")
        for n in range(ANSWERS_KEPT + 10)
    ]
    for request in asked:
        assert policy.evaluate(request).effect == "allow"
    answers, entity_sets = policy.kept()
    assert (answers, entity_sets) == (ANSWERS_KEPT, ENTITIES_KEPT)
    assert all(policy.remembered(request) is None for request in asked[:10])
    assert all(policy.remembered(request) is not None for request in asked[10:])
    assert policy.evaluate(asked[0]).effect == "allow"
    assert policy.remembered(asked[0]) is not None
    assert policy.remembered(asked[10]) is None
