"""Cedar policies through the admin API and /v1/authorize: scoping by ARN prefix, tag,
principal and action group; default deny; malformed policies rejected with positions."""

from __future__ import annotations

from collections.abc import Callable

import anthropic
import httpx
import pytest

from tests.support.fake_upstream import RunningFake
from tests.support.server import RunningTether

DEV_BUCKETS = """\
// the agent may work on dev buckets only
@id("dev-buckets")
permit(principal in Project::"p", action in Action::"s3:*", resource)
when { resource.arn like "arn:aws:s3:::dev-*" };
"""

TAGGED = """\
permit(principal, action == Action::"file:Write", resource)
when { resource.tags.env == "dev" };

@reason("production is off limits")
forbid(principal, action, resource) when { resource.tags.env == "prod" };

permit(principal, action == Action::"s3:PutObject", resource);
"""


def decide(
    tether: RunningTether,
    key: str,
    action: str,
    resource: str,
    tags: dict[str, str] | None = None,
    session: str = "s1",
) -> httpx.Response:
    body = {"session_id": session, "action": action, "resource": resource, "tags": tags or {}}
    return httpx.post(
        f"{tether.url}/v1/authorize", json=body, headers={"Authorization": f"Bearer {key}"}
    )


def test_without_a_policy_everything_but_model_calls_is_denied(
    gateway: RunningTether, upstream: RunningFake, sdk: Callable[..., anthropic.Anthropic]
) -> None:
    gateway.create_project("bare", upstream.fake.api_key, policy=None)
    key = gateway.create_agent("a", "bare")

    denied = decide(gateway, key, "s3:GetObject", "arn:aws:s3:::dev-a/k")

    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "policy_denied"
    assert "default deny" in denied.json()["reason"]
    client = sdk(gateway, key)
    reply = client.messages.create(
        model="claude-sonnet-5-5", max_tokens=16, messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.content


def test_arn_prefix_scoping(tether_any: RunningTether) -> None:
    tether_any.create_project("p", policy=DEV_BUCKETS)
    key = tether_any.create_agent("a", "p")

    allowed = decide(tether_any, key, "s3:GetObject", "arn:aws:s3:::dev-data/report.csv")
    assert allowed.status_code == 200, allowed.text
    assert "dev-buckets" in allowed.json()["reason"]
    for resource in (
        "arn:aws:s3:::prod-data/report.csv",
        "arn:aws:s3:::dev",
        "arn:aws:s3:::xdev-a",
    ):
        denied = decide(tether_any, key, "s3:GetObject", resource)
        assert denied.status_code == 403, resource
        assert denied.json()["error"]["code"] == "policy_denied"
    other_service = decide(tether_any, key, "iam:GetRole", "arn:aws:s3:::dev-data")
    assert other_service.status_code == 403


def test_tag_scoping_and_forbid_overrides_permit(tether: RunningTether) -> None:
    tether.create_project("p", policy=TAGGED)
    key = tether.create_agent("a", "p")

    assert decide(tether, key, "file:Write", "/srv/app/x", {"env": "dev"}).status_code == 200
    assert decide(tether, key, "file:Write", "/srv/app/x", {"env": "staging"}).status_code == 403
    assert decide(tether, key, "file:Write", "/srv/app/x").status_code == 403, "untagged"
    assert decide(tether, key, "s3:PutObject", "arn:aws:s3:::any").status_code == 200
    forbidden = decide(tether, key, "s3:PutObject", "arn:aws:s3:::any", {"env": "prod"})
    assert forbidden.status_code == 403
    assert "production is off limits" in forbidden.json()["reason"]


def test_action_groups_and_principal_scoping(tether: RunningTether) -> None:
    tether.create_project(
        "p",
        policy="""
        permit(principal == Agent::"builder", action, resource);
        forbid(principal, action in Action::"delete", resource);
        """,
    )
    builder, other = tether.create_agent("builder", "p"), tether.create_agent("other", "p")

    assert decide(tether, builder, "ec2:RunInstances", "arn:aws:ec2:::i-1").status_code == 200
    assert decide(tether, other, "ec2:RunInstances", "arn:aws:ec2:::i-1").status_code == 403
    for deletion in ("s3:DeleteBucket", "iam:DeleteRole", "ec2:TerminateInstances", "db:DropTable"):
        refused = decide(tether, builder, deletion, "arn:aws:x:::y")
        assert refused.status_code == 403, deletion
        assert refused.json()["error"]["code"] == "policy_denied"


def test_every_decision_names_the_policy_version(tether: RunningTether) -> None:
    tether.create_project("p", policy=DEV_BUCKETS)
    key = tether.create_agent("a", "p")
    decision = decide(tether, key, "s3:GetObject", "arn:aws:s3:::dev-a").json()
    event = tether.call("GET", "/audit", params={"session": "s1"}).json()[0]
    assert event["id"] == decision["event_id"]
    assert event["attributes"]["policy_version"] == 1
    assert event["attributes"]["policy_rules"] == ["'dev-buckets' (line 2)"]


MALFORMED = [
    (
        'permit(principal, action, resource)\nwhen { resource.tags.env == "prod" ;\n',
        (2, 36),
        "unexpected token `;`",
    ),
    (
        "permit(principal, action, resource);\n\npermit(principal, acton, resource);\n",
        (3, 19),
        "acton",
    ),
    (
        'permit(principal, action, resource)\n  when { principal.nmae == "x" };\n',
        (2, 20),
        "nmae",
    ),
    ('forbid(principal, action, resource) when { resource.arn like "dev-* };\n', (1, 62), "token"),
    ("permit(principal, action, resource)\n", (1, 36), "unexpected end of input"),
    (
        "permit(principal, action, resource);\nfrobid(principal, action, resource);\n",
        (2, 1),
        "frobid",
    ),
]


@pytest.mark.parametrize(("source", "at", "says"), MALFORMED)
def test_malformed_policy_is_rejected_with_its_position_and_the_old_one_stays(
    tether: RunningTether, source: str, at: tuple[int, int], says: str
) -> None:
    tether.create_project("p", policy=DEV_BUCKETS)
    key = tether.create_agent("a", "p")

    rejected = tether.call("PUT", "/projects/p/policy", json={"source": source})

    assert rejected.status_code == 422, rejected.text
    error = rejected.json()["error"]
    assert error["code"] == "policy_invalid"
    first = error["details"][0]
    assert (first["line"], first["column"]) == at, first
    assert says in first["message"]
    assert f"line {at[0]}, column {at[1]}" in error["message"]
    assert tether.call("GET", "/projects/p/policy").json()["version"] == 1
    assert decide(tether, key, "s3:GetObject", "arn:aws:s3:::dev-a").status_code == 200


def test_versions_are_kept_and_reapplying_the_same_text_changes_nothing(
    tether_any: RunningTether,
) -> None:
    tether_any.create_project("p", policy=None)
    first = tether_any.call("PUT", "/projects/p/policy", json={"source": DEV_BUCKETS})
    assert first.status_code == 201 and first.json()["version"] == 1
    again = tether_any.call("PUT", "/projects/p/policy", json={"source": DEV_BUCKETS})
    assert again.status_code == 200 and again.json() | {"changed": True} == first.json()
    assert again.json()["changed"] is False
    second = tether_any.call("PUT", "/projects/p/policy", json={"source": TAGGED})
    assert second.json()["version"] == 2
    versions = tether_any.call("GET", "/projects/p/policy/versions").json()
    assert [v["version"] for v in versions] == [2, 1]
    assert versions[1]["source"] == DEV_BUCKETS


def test_a_new_version_is_in_force_for_the_next_request(tether: RunningTether) -> None:
    tether.create_project("p", policy=DEV_BUCKETS)
    key = tether.create_agent("a", "p")
    assert decide(tether, key, "s3:GetObject", "arn:aws:s3:::dev-a").status_code == 200
    tether.apply_policy("p", "forbid(principal, action, resource);")
    assert decide(tether, key, "s3:GetObject", "arn:aws:s3:::dev-a").status_code == 403


def test_policy_of_unknown_project_is_a_404(tether: RunningTether) -> None:
    response = tether.call("PUT", "/projects/nope/policy", json={"source": DEV_BUCKETS})
    assert response.status_code == 404
    assert tether.call("GET", "/projects/nope/policy").status_code == 404


def test_evaluate_probes_against_current_and_candidate(tether: RunningTether) -> None:
    tether.create_project("p", policy=DEV_BUCKETS)
    probes = [
        {"agent": "a", "action": "s3:GetObject", "resource": "arn:aws:s3:::dev-a"},
        {"agent": "a", "action": "s3:GetObject", "resource": "arn:aws:s3:::prod-a"},
        {"agent": "a", "action": "s3:DeleteBucket", "resource": "arn:aws:s3:::dev-a"},
    ]
    current = tether.call("POST", "/projects/p/policy/evaluate", json={"probes": probes}).json()
    assert current["policy_version"] == 1
    assert [r["decision"] for r in current["results"]] == ["allow", "deny", "approval"]
    candidate = tether.call(
        "POST",
        "/projects/p/policy/evaluate",
        json={"probes": probes, "source": "permit(principal, action, resource);"},
    ).json()
    assert candidate["policy_version"] is None
    assert [r["decision"] for r in candidate["results"]] == ["allow", "allow", "approval"]
    broken = tether.call(
        "POST", "/projects/p/policy/evaluate", json={"probes": probes, "source": "permit("}
    )
    assert broken.status_code == 422


def test_a_project_policy_can_forbid_or_ask_for_model_calls(
    gateway: RunningTether, upstream: RunningFake, sdk: Callable[..., anthropic.Anthropic]
) -> None:
    key = gateway.create_agent("a", "p")
    client = sdk(gateway, key)

    def call(model: str) -> None:
        client.messages.create(
            model=model, max_tokens=16, messages=[{"role": "user", "content": "hi"}]
        )

    gateway.apply_policy(
        "p",
        'forbid(principal, action in Action::"model", resource)\n'
        'when { resource.arn like "anthropic:model/claude-opus*" };\n'
        'permit(principal, action == Action::"s3:GetObject", resource);',
    )
    call("claude-sonnet-5-5")
    with pytest.raises(anthropic.PermissionDeniedError, match="forbidden by policy"):
        call("claude-opus-5-5")
    gateway.apply_policy("p", "forbid(principal, action, resource);")
    with pytest.raises(anthropic.PermissionDeniedError):
        call("claude-sonnet-5-5")
    gateway.apply_policy("p", 'permit(principal, action == Action::"s3:GetObject", resource);')
    call("claude-sonnet-5-5")


def test_a_stored_policy_that_no_longer_compiles_fails_closed(tether: RunningTether) -> None:
    tether.create_project("p", policy=DEV_BUCKETS)
    key = tether.create_agent("a", "p")
    project = tether.runtime.directory.project(tether.call("GET", "/projects/p").json()["id"])
    assert project is not None

    async def store_unchecked() -> None:
        await tether.runtime.policy_store.add(project.id, "permit(principal, action", "test")
        await tether.runtime.feed.catch_up()

    tether.run(store_unchecked())

    denied = decide(tether, key, "s3:GetObject", "arn:aws:s3:::dev-a")
    assert denied.status_code == 503
    assert denied.json()["error"]["code"] == "policy_unavailable"
    assert "policy v2 cannot be evaluated" in denied.json()["reason"]
    tether.apply_policy("p", DEV_BUCKETS)
    assert decide(tether, key, "s3:GetObject", "arn:aws:s3:::dev-a").status_code == 200
