"""Callers that name no session, on a fleet sharing Redis: a cloud call made through one
replica joins the session the agent is in on another (the AWS broker names none)."""

from __future__ import annotations

from tests.guards.test_guards import Sdk, ask
from tests.support.aws import agent_client, issue_aws_keys, running_moto, set_aws_credentials
from tests.support.server import RunningTether


def test_a_cloud_call_on_one_replica_joins_the_session_the_agent_is_in_on_another(
    redis_fleet: tuple[RunningTether, RunningTether], sdk: Sdk
) -> None:
    first, second = redis_fleet
    key = first.create_agent("deployer", "p")
    ask(sdk(first, key, "claude-session-1"))
    with running_moto() as moto_url:
        set_aws_credentials(first, "p", moto_url)
        pair = issue_aws_keys(first, "deployer")
        agent_client(second, pair, "s3").list_buckets()
    events = first.call("GET", "/audit", params={"agent": "deployer", "action": "s3:"}).json()
    assert events, "the cloud call is on record"
    assert {event["session_id"] for event in events} == {"claude-session-1"}
