"""Callers that name no session, on a fleet sharing Redis: a cloud call made through one
replica joins the session the agent is in on another (the AWS broker names none)."""

from __future__ import annotations

from tests.guards.test_guards import Sdk, ask
from tests.support.aws import agent_client, issue_aws_keys, running_moto, set_aws_credentials
from tests.support.server import RunningTether
from tests.support.tcp_proxy import CuttableProxy


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


def test_a_caller_naming_no_session_keeps_its_session_when_a_reply_from_redis_is_lost(
    tether_behind_redis_proxy: RunningTether, redis_proxy: CuttableProxy, sdk: Sdk
) -> None:
    """Finding the conversation's session is asked again when Redis's reply was lost, and
    finds the session the lost reply held."""
    tether = tether_behind_redis_proxy
    agent = sdk(tether, tether.create_agent("script", "p"))
    sessions = []
    for _ in range(2):
        raw = agent.messages.with_raw_response.create(
            model="claude-sonnet-5",
            max_tokens=100,
            messages=[{"role": "user", "content": "summarise the logs"}],
        )
        sessions.append(raw.headers["tether-session-id"])
        redis_proxy.lose_reply_to(b"conversation:")
    assert sessions[0] == sessions[1]
