"""Every AWS call an identified agent makes is on the record, whichever way it ends: a call
that went ahead is settled (its completion, even when it never left tether), and a call
refused before anything was decided (no credential, a body tether cannot read, tags it
could not look up) is a refusal under the agent, its project and session."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.support.aws import (
    AgentPair,
    agent_client,
    issue_aws_keys,
    moto_client,
    set_aws_credentials,
)
from tests.support.server import PERMIT_ALL, RunningTether, free_port

PATIENT = 60.0
ACCOUNT = "123456789012"
Events = list[dict[str, Any]]


def _agent(broker: RunningTether, project: str, endpoint: str | None, **aws: Any) -> AgentPair:
    """An agent of a new project; AWS credentials pointing at ``endpoint`` (None: none)."""
    broker.create_project(project, policy=PERMIT_ALL)
    broker.create_agent(f"{project}-agent", project)
    if endpoint is not None:
        set_aws_credentials(broker, project, endpoint, **aws)
    return issue_aws_keys(broker, f"{project}-agent")


def _closed_endpoint() -> str:
    """Where nothing listens: AWS (and its STS) out of reach."""
    return f"http://127.0.0.1:{free_port()}"


def _trail(broker: RunningTether, agent: str, until: Callable[[Events], bool] = bool) -> Events:
    """The agent's events once ``until`` holds of them (completions are written after the
    answer, with the audit log's next commit)."""
    deadline = time.monotonic() + PATIENT
    while True:
        found: Events = broker.call("GET", "/audit", params={"agent": agent, "limit": 1000}).json()
        if until(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def _completions(events: Events) -> Events:
    return [e for e in events if e["action"].endswith(":completed")]


def _approval(broker: RunningTether, project: str, approval_id: str) -> dict[str, Any]:
    found = broker.call("GET", "/approvals", params={"project": project}).json()
    (approval,) = [a for a in found if a["id"] == approval_id]
    return dict(approval)


def _code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def test_a_call_whose_role_cannot_be_assumed_is_settled_and_its_grant_given_back(
    broker: RunningTether,
) -> None:
    """The project's role is assumed after the decision, to sign the call: STS out of
    reach, the approved deletion was allowed, its grant spent, and the call never sent,
    with no completion. It is settled as not sent (503, upstream not reached, the reason)
    and the grant is usable again."""
    role = f"arn:aws:iam::{ACCOUNT}:role/tether-agents"
    pair = _agent(broker, "norole", _closed_endpoint(), role_arn=role, account_id=ACCOUNT)
    logs = agent_client(broker, pair, "logs")
    with pytest.raises(ClientError) as asked:
        logs.delete_log_group(logGroupName="app")
    assert "approval" in str(asked.value), str(asked.value)
    (pending,) = broker.call("GET", "/approvals", params={"project": "norole"}).json()
    broker.call("POST", f"/approvals/{pending['id']}/approve", json={}).raise_for_status()

    with pytest.raises(ClientError) as unsigned:
        logs.delete_log_group(logGroupName="app")
    assert _code(unsigned) == "ServiceUnavailable", str(unsigned.value)
    assert unsigned.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert "could not be assumed" in str(unsigned.value)

    def settled(found: Events) -> bool:
        allowed = [e for e in found if e["result"] == "allow" and e["source"] == "aws"]
        return len(_completions(found)) == len(allowed) > 0

    # botocore retries a 503 once: the retry is allowed on the grant given back
    trail = _trail(broker, "norole-agent", settled)
    allowed = [e["id"] for e in trail if e["result"] == "allow" and e["source"] == "aws"]
    completions = _completions(trail)
    assert sorted(c["attributes"]["decision_event"] for c in completions) == sorted(allowed)
    for completion in completions:
        assert completion["action"] == "logs:DeleteLogGroup:completed"
        assert completion["result"] == "not_sent" and completion["session_id"]
        assert completion["attributes"]["status"] == 503
        assert completion["attributes"]["upstream_reached"] is False
        assert role in completion["reason"] and "could not be assumed" in completion["reason"]
    assert _approval(broker, "norole", pending["id"])["state"] == "approved", "given back"


def test_signed_chunks_with_a_trailer_are_settled_as_not_sent(
    broker: RunningTether, moto_url: str
) -> None:
    """Refused 501 after the upload was decided: the decision had no completion."""
    pair = _agent(broker, "trailer", moto_url)
    moto_client(moto_url, "s3").create_bucket(Bucket="trailer-bucket")
    url = f"{broker.url}/aws/trailer-bucket/key"
    request = AWSRequest(
        method="PUT",
        url=url,
        headers={
            "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
            "Content-Encoding": "aws-chunked",
            "x-amz-decoded-content-length": "0",
        },
    )

    class _Trailer(S3SigV4Auth):  # type: ignore[misc]
        def payload(self, request: AWSRequest) -> str:
            return "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"

    credentials = Credentials(pair.access_key_id, pair.secret_access_key)
    _Trailer(credentials, "s3", "us-east-1").add_auth(request)
    answer = httpx.put(url, headers=dict(request.headers.items()), content=b"", timeout=30)
    assert answer.status_code == 501 and "NotImplemented" in answer.text, answer.text

    trail = _trail(broker, "trailer-agent", lambda found: bool(_completions(found)))
    (completion,) = _completions(trail)
    assert completion["action"] == "s3:PutObject:completed"
    assert completion["result"] == "not_sent" and completion["attributes"]["status"] == 501
    assert "trailers are not supported" in completion["reason"]


def test_keys_allowed_in_a_delete_objects_that_ends_pending_are_settled_and_given_back(
    broker: RunningTether, moto_url: str
) -> None:
    """A grant for two keys under ``logs/``, then one ``DeleteObjects`` of three: each key
    looked at alone fits the grant, so all three are decided; the first two spend it and
    the third asks anew. The call is answered pending and deletes nothing; the two
    allowed keys had no completion and the grant stayed spent. They are settled as not
    carried out, naming the key that stopped the call, and the grant is whole again."""
    pair = _agent(broker, "partial", moto_url)
    s3 = agent_client(broker, pair, "s3")
    s3.create_bucket(Bucket="partial-bucket")
    direct = moto_client(moto_url, "s3")
    keys = ["logs/1", "logs/2", "logs/3"]
    for key in keys:
        direct.put_object(Bucket="partial-bucket", Key=key, Body=b"x")

    def delete(of: list[str]) -> pytest.ExceptionInfo[ClientError]:
        with pytest.raises(ClientError) as refused:
            s3.delete_objects(Bucket="partial-bucket", Delete={"Objects": [{"Key": k} for k in of]})
        return refused

    assert "approval" in str(delete(keys[:2]).value)
    (group,) = broker.call("GET", "/approvals", params={"project": "partial"}).json()
    approved = broker.call("POST", f"/approvals/{group['id']}/approve", json={}).json()
    assert approved["max_uses"] == 2, approved
    before = max(e["seq"] for e in _trail(broker, "partial-agent"))

    waiting = delete(keys)
    assert _code(waiting) == "AccessDenied" and "pending" in str(waiting.value)
    assert direct.list_objects_v2(Bucket="partial-bucket")["KeyCount"] == 3

    def settled(found: Events) -> bool:
        return len(_completions([e for e in found if e["seq"] > before])) >= 2

    trail = [e for e in _trail(broker, "partial-agent", settled) if e["seq"] > before]
    allowed = {e["id"]: e for e in trail if e["result"] == "allow"}
    (asked,) = [e for e in trail if e["result"] == "pending"]
    assert asked["resource"] == "arn:aws:s3:::partial-bucket/logs/3"
    assert sorted(e["resource"] for e in allowed.values()) == [
        "arn:aws:s3:::partial-bucket/logs/1",
        "arn:aws:s3:::partial-bucket/logs/2",
    ]
    completions = _completions(trail)
    assert sorted(c["attributes"]["decision_event"] for c in completions) == sorted(allowed)
    for completion in completions:
        assert completion["result"] == "not_sent", completion
        assert completion["attributes"]["status"] == 403
        assert asked["id"] in completion["reason"] and "logs/3" in completion["reason"]
    given_back = _approval(broker, "partial", group["id"])
    assert (given_back["state"], given_back["uses"]) == ("approved", 0), given_back


def _refusals(broker: RunningTether, agent: str) -> Events:
    return [e for e in _trail(broker, agent) if e["result"] == "deny"]


def test_a_project_without_aws_credentials_refuses_on_the_record(
    broker: RunningTether,
) -> None:
    pair = _agent(broker, "unset", None)
    with pytest.raises(ClientError) as refused:
        agent_client(broker, pair, "s3").list_buckets()
    assert _code(refused) == "AccessDenied" and "no AWS credentials" in str(refused.value)
    (event,) = _refusals(broker, "unset-agent")
    assert event["code"] == "aws_not_configured" and event["action"] == "s3:Call"
    assert event["source"] == "aws" and event["session_id"] and event["project_id"]
    assert "no AWS credentials" in event["reason"]


def test_an_unreadable_delete_objects_body_is_refused_on_the_record(
    broker: RunningTether, moto_url: str
) -> None:
    pair = _agent(broker, "badxml", moto_url)
    url = f"{broker.url}/aws/badxml-bucket?delete"
    body = b"<Delete><Object><Key>a</Key></Object"
    request = AWSRequest(method="POST", url=url, data=body)
    credentials = Credentials(pair.access_key_id, pair.secret_access_key)
    S3SigV4Auth(credentials, "s3", "us-east-1").add_auth(request)
    answer = httpx.post(url, headers=dict(request.headers.items()), content=body, timeout=30)
    assert answer.status_code == 400 and "MalformedXML" in answer.text, answer.text
    (event,) = _refusals(broker, "badxml-agent")
    assert event["code"] == "unreadable_request" and event["action"] == "s3:Call"
    assert event["attributes"]["request"] == "POST /aws/badxml-bucket"
    assert "not XML" in event["reason"]


def test_tags_that_cannot_be_read_and_an_account_sts_cannot_name_are_refused_on_the_record(
    broker: RunningTether,
) -> None:
    """AWS out of reach: with the account configured, the bucket's tags cannot be read
    (403, fail closed); without it, the account id cannot be asked of STS (503)."""
    tagless = _agent(broker, "tagless", _closed_endpoint(), account_id=ACCOUNT)
    with pytest.raises(ClientError) as untagged:
        agent_client(broker, tagless, "s3").get_object(Bucket="far-bucket", Key="k")
    assert untagged.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    (event,) = _refusals(broker, "tagless-agent")
    assert event["code"] == "tag_lookup_failed" and event["action"] == "s3:GetObject"
    assert event["resource"] == "arn:aws:s3:::far-bucket/k" and event["session_id"]

    nameless = _agent(broker, "nameless", _closed_endpoint())
    with pytest.raises(ClientError) as unnamed:
        agent_client(broker, nameless, "s3").list_buckets()
    assert unnamed.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    refusals = _refusals(broker, "nameless-agent")  # botocore retries a 503 once
    assert refusals and all(e["code"] == "aws_unavailable" for e in refusals), refusals
    assert all("account id" in e["reason"] and e["session_id"] for e in refusals)
