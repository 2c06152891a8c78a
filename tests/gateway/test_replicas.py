"""Two tether processes on one PostgreSQL: changes on one are enforced by the other."""

from __future__ import annotations

import time

import httpx

from tests.support.server import RunningTether


def _status(tether: RunningTether, key: str) -> httpx.Response:
    return httpx.post(
        f"{tether.url}/v1/authorize",
        json={"action": "s3:GetObject", "resource": "r", "session_id": f"s-{key[-8:]}"},
        headers={"x-api-key": key},
    )


def _until_refused(tether: RunningTether, key: str, within: float) -> tuple[httpx.Response, float]:
    start = time.monotonic()
    while True:
        response = _status(tether, key)
        elapsed = time.monotonic() - start
        if response.status_code != 200 or elapsed > within:
            return response, elapsed
        time.sleep(0.02)


def test_key_created_on_one_replica_works_on_the_other_at_once(
    replicas: tuple[RunningTether, RunningTether],
) -> None:
    first, second = replicas
    first.create_project("p")
    key = first.create_agent("a", "p")
    assert _status(second, key).status_code == 200


def test_revocation_and_quarantine_reach_the_other_replica_within_a_second(
    replicas: tuple[RunningTether, RunningTether],
) -> None:
    first, second = replicas
    first.create_project("p")
    revoked_key = first.create_agent("revoked", "p")
    quarantined_key = first.create_agent("quarantined", "p")
    bystander = first.create_agent("bystander", "p")
    for key in (revoked_key, quarantined_key, bystander):
        assert _status(second, key).status_code == 200

    assert first.call("POST", "/agents/revoked/revoke").status_code == 200
    response, elapsed = _until_refused(second, revoked_key, within=1.0)
    assert response.status_code == 401 and elapsed <= 1.0

    assert first.call("POST", "/agents/quarantined/quarantine").status_code == 200
    response, elapsed = _until_refused(second, quarantined_key, within=1.0)
    assert response.status_code == 423 and elapsed <= 1.0
    assert response.json()["error"]["code"] == "agent_quarantined"

    assert _status(second, bystander).status_code == 200


def test_a_shadow_applied_on_one_replica_is_evaluated_by_the_other(
    replicas: tuple[RunningTether, RunningTether],
) -> None:
    first, second = replicas
    first.create_project("p")
    key = first.create_agent("a", "p")
    shadow = 'forbid(principal, action == Action::"s3:GetObject", resource);'
    assert (
        first.call("PUT", "/projects/p/policy/shadow", json={"source": shadow}).status_code == 201
    )
    start = time.monotonic()
    while time.monotonic() - start < 2.0:
        assert _status(second, key).status_code == 200, "the policy in force still decides"
        report = second.call("GET", "/projects/p/policy/shadow").json()
        if report["would_deny"]:
            break
        time.sleep(0.05)
    assert report["would_deny"] >= 1
    assert report["differences"][0]["rule"] == "at line 1"
