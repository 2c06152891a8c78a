"""The issue's incident: "clean up the development environment" through the AWS broker.

moto plays AWS with dev and prod S3 buckets, CloudWatch alarms, IAM roles and EC2
snapshots (some named ``dev-*`` but tagged prod). An agent scoped to dev by policy (ARN
prefix and tag) deletes everything it can, with boto3 and then with the aws CLI;
afterwards moto itself shows prod intact and only the approved dev deletions done, and
the audit trail holds every attempt."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from tests.support.aws import (
    AgentPair,
    agent_client,
    aws_cli,
    issue_aws_keys,
    moto_client,
    set_aws_credentials,
)
from tests.support.server import RunningTether

POLICY = """
@id("look-around")
permit(principal, action in [Action::"s3:ListAllMyBuckets", Action::"iam:ListRoles",
  Action::"ec2:DescribeSnapshots", Action::"cloudwatch:DescribeAlarms"], resource);

@id("dev-only")
permit(principal, action, resource)
when {
  resource.tags.env == "dev" &&
  (resource.arn like "arn:aws:s3:::dev-*" || resource.arn like "arn:aws:iam::*:role/dev-*" ||
   resource.arn like "arn:aws:cloudwatch:*:alarm:dev-*" ||
   resource.arn like "arn:aws:ec2:*:snapshot/*")
};

@id("no-prod")
@reason("production is off limits")
forbid(principal, action, resource) when { resource.tags.env == "prod" };
"""

BUCKETS = {
    "dev-app": ("dev", ["a.txt", "b.txt"]),
    "dev-logs": ("dev", ["2026/11/29.log"]),
    "dev-shared": ("prod", ["customers.csv"]),
    "prod-data": ("prod", ["ledger.db"]),
}
ALARMS = {"dev-cpu": "dev", "dev-mem": "dev", "dev-billing": "prod", "prod-cpu": "prod"}
ROLES = {"dev-runner": "dev", "dev-deployer": "dev", "dev-admin": "prod", "prod-admin": "prod"}
SNAPSHOTS = {"nightly dev 1": "dev", "nightly dev 2": "dev", "nightly dev-ish": "prod",
             "nightly prod": "prod"}  # fmt: skip


def _tags(env: str) -> list[dict[str, str]]:
    return [{"Key": "env", "Value": env}]


def _create_world(moto: str) -> dict[str, str]:
    """The resources; returns snapshot description → id."""
    s3 = moto_client(moto, "s3")
    for bucket, (env, keys) in BUCKETS.items():
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": _tags(env)})
        for key in keys:
            s3.put_object(Bucket=bucket, Key=key, Body=f"{bucket}/{key}".encode())
    cloudwatch = moto_client(moto, "cloudwatch")
    for alarm, env in ALARMS.items():
        cloudwatch.put_metric_alarm(
            AlarmName=alarm, MetricName="CPUUtilization", Namespace="AWS/EC2", Statistic="Average",
            Period=60, EvaluationPeriods=1, Threshold=90, ComparisonOperator="GreaterThanThreshold",
            Tags=_tags(env),
        )  # fmt: skip
    iam = moto_client(moto, "iam")
    for role, env in ROLES.items():
        iam.create_role(RoleName=role, AssumeRolePolicyDocument="{}", Tags=_tags(env))
    ec2 = moto_client(moto, "ec2")
    volume = ec2.create_volume(AvailabilityZone="us-east-1a", Size=1)["VolumeId"]
    snapshots = {}
    for description, env in SNAPSHOTS.items():
        snapshot = ec2.create_snapshot(
            VolumeId=volume,
            Description=description,
            TagSpecifications=[{"ResourceType": "snapshot", "Tags": _tags(env)}],
        )
        snapshots[description] = snapshot["SnapshotId"]
    return snapshots


def _attempt(log: list[tuple[str, str]], what: str, call: Any, **kwargs: Any) -> Any:
    try:
        answer = call(**kwargs)
    except ClientError as exc:
        log.append((what, f"{exc.response['Error']['Code']}: {exc.response['Error']['Message']}"))
        return None
    log.append((what, "ok"))
    return answer


def cleanup_dev(tether: RunningTether, pair: AgentPair) -> list[tuple[str, str]]:
    """The agent's boto3 script: list everything, delete everything it can."""
    log: list[tuple[str, str]] = []
    s3 = agent_client(tether, pair, "s3")
    buckets = _attempt(log, "ListBuckets", s3.list_buckets) or {"Buckets": []}
    for bucket in [b["Name"] for b in buckets["Buckets"]]:
        listed = _attempt(log, f"ListObjectsV2 {bucket}", s3.list_objects_v2, Bucket=bucket)
        keys = [o["Key"] for o in (listed or {}).get("Contents", [])]
        if keys:
            answer = _attempt(
                log, f"DeleteObjects {bucket}", s3.delete_objects, Bucket=bucket,
                Delete={"Objects": [{"Key": k} for k in keys]},
            )  # fmt: skip
            if answer is not None:
                assert not answer.get("Errors"), answer
        _attempt(log, f"DeleteBucket {bucket}", s3.delete_bucket, Bucket=bucket)
    cloudwatch = agent_client(tether, pair, "cloudwatch")
    alarms = _attempt(log, "DescribeAlarms", cloudwatch.describe_alarms) or {"MetricAlarms": []}
    names = [a["AlarmName"] for a in alarms["MetricAlarms"]]
    if names:
        _attempt(log, "DeleteAlarms all", cloudwatch.delete_alarms, AlarmNames=names)
    for name in names:
        _attempt(log, f"DeleteAlarms {name}", cloudwatch.delete_alarms, AlarmNames=[name])
    iam = agent_client(tether, pair, "iam")
    roles = _attempt(log, "ListRoles", iam.list_roles) or {"Roles": []}
    for role in [r["RoleName"] for r in roles["Roles"]]:
        _attempt(log, f"DeleteRole {role}", iam.delete_role, RoleName=role)
    ec2 = agent_client(tether, pair, "ec2")
    found = _attempt(
        log, "DescribeSnapshots", ec2.describe_snapshots,
        Filters=[{"Name": "description", "Values": ["nightly *"]}],
    ) or {"Snapshots": []}  # fmt: skip
    for snapshot in found["Snapshots"]:
        _attempt(log, f"DeleteSnapshot {snapshot['Description']}", ec2.delete_snapshot,
                 SnapshotId=snapshot["SnapshotId"])  # fmt: skip
    return log


def _outcome(log: list[tuple[str, str]], what: str) -> str:
    return [result for step, result in log if step == what][-1]


def _approvals(tether: RunningTether, state: str) -> list[dict[str, Any]]:
    response = tether.call("GET", "/approvals", params={"project": "ops", "state": state})
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()
    return found


def _decide(tether: RunningTether, pending: list[dict[str, Any]], approve: set[str]) -> None:
    for approval in pending:
        if approval["resource"] in approve:
            answer = tether.call("POST", f"/approvals/{approval['id']}/approve", json={})
        else:
            answer = tether.call(
                "POST", f"/approvals/{approval['id']}/deny", json={"reason": "keep it for now"}
            )
        assert answer.status_code == 200, answer.text


def test_clean_up_dev_deletes_only_approved_dev_resources(
    broker: RunningTether, moto_url: str, tmp_path: Path
) -> None:
    snapshots = _create_world(moto_url)
    broker.create_project("ops", policy=POLICY)
    broker.create_agent("janitor", "ops")
    set_aws_credentials(broker, "ops", moto_url)
    pair = issue_aws_keys(broker, "janitor")

    first = cleanup_dev(broker, pair)
    assert _outcome(first, "ListBuckets") == "ok"
    assert "production is off limits" in _outcome(first, "ListObjectsV2 prod-data")
    assert "production is off limits" in _outcome(first, "DeleteBucket dev-shared")
    assert "approval apr_" in _outcome(first, "DeleteObjects dev-app")
    assert "production is off limits" in _outcome(first, "DeleteAlarms all")
    assert "approval apr_" in _outcome(first, "DeleteAlarms dev-cpu")
    assert _outcome(first, "DeleteRole prod-admin").startswith("AccessDenied")
    assert "approval apr_" in _outcome(first, "DeleteRole dev-runner")
    assert _outcome(first, "DeleteSnapshot nightly prod").startswith("UnauthorizedOperation")
    assert "approval apr_" in _outcome(first, "DeleteSnapshot nightly dev 1")

    pending = _approvals(broker, "pending")
    account = "123456789012"
    approve = {
        "arn:aws:s3:::dev-app/*",  # one request for both objects
        "arn:aws:s3:::dev-app",
        f"arn:aws:cloudwatch:us-east-1:{account}:alarm:dev-cpu",
        f"arn:aws:iam::{account}:role/dev-runner",
        f"arn:aws:ec2:us-east-1:{account}:snapshot/{snapshots['nightly dev 1']}",
    }
    requested = {a["resource"] for a in pending}
    assert approve <= requested, requested
    assert not any("prod" in r or "dev-shared" in r for r in requested), requested
    _decide(broker, pending, approve)

    second = cleanup_dev(broker, pair)
    assert _outcome(second, "DeleteObjects dev-app") == "ok"
    assert _outcome(second, "DeleteBucket dev-app") == "ok"
    assert _outcome(second, "DeleteAlarms dev-cpu") == "ok"
    assert _outcome(second, "DeleteRole dev-runner") == "ok"
    assert _outcome(second, "DeleteSnapshot nightly dev 1") == "ok"
    assert "keep it for now" in _outcome(second, "DeleteRole dev-deployer")
    assert "keep it for now" in _outcome(second, "DeleteObjects dev-logs")

    # the same agent with the aws CLI: prod refused, a dev deletion waits, then runs
    cli = tmp_path / "cli"
    cli.mkdir()
    listed = aws_cli(broker, pair, cli, "s3api", "list-buckets", "--output", "json")
    assert listed.returncode == 0, listed.stderr
    assert "dev-logs" in listed.stdout
    for args in (
        ("s3", "rm", "s3://prod-data/ledger.db"),
        ("s3", "rb", "s3://dev-shared", "--force"),
        ("cloudwatch", "delete-alarms", "--alarm-names", "prod-cpu"),
        ("iam", "delete-role", "--role-name", "prod-admin"),
        ("ec2", "delete-snapshot", "--snapshot-id", snapshots["nightly dev-ish"]),
    ):
        refused = aws_cli(broker, pair, cli, *args)
        assert refused.returncode != 0, args
        assert "production is off limits" in refused.stderr, (args, refused.stderr)
    moto_client(moto_url, "cloudwatch").put_metric_alarm(
        AlarmName="dev-cli", MetricName="CPUUtilization", Namespace="AWS/EC2",
        Statistic="Average", Period=60, EvaluationPeriods=1, Threshold=90,
        ComparisonOperator="GreaterThanThreshold", Tags=_tags("dev"),
    )  # fmt: skip
    waiting = aws_cli(broker, pair, cli, "cloudwatch", "delete-alarms", "--alarm-names", "dev-cli")
    assert "approval" in waiting.stderr and "pending" in waiting.stderr, waiting.stderr
    (approval,) = [a for a in _approvals(broker, "pending") if a["resource"].endswith("dev-cli")]
    _decide(broker, [approval], {approval["resource"]})
    done = aws_cli(broker, pair, cli, "cloudwatch", "delete-alarms", "--alarm-names", "dev-cli")
    assert done.returncode == 0, done.stderr

    # moto itself: prod intact, only approved dev deletions happened
    s3 = moto_client(moto_url, "s3")
    buckets = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert buckets >= {"dev-logs", "dev-shared", "prod-data"} and "dev-app" not in buckets
    for bucket in ("dev-logs", "dev-shared", "prod-data"):
        keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}
        assert keys == set(BUCKETS[bucket][1]), bucket
    alarms = {
        a["AlarmName"]
        for a in moto_client(moto_url, "cloudwatch").describe_alarms()["MetricAlarms"]
    }
    assert alarms == {"dev-mem", "dev-billing", "prod-cpu"}
    roles = {r["RoleName"] for r in moto_client(moto_url, "iam").list_roles()["Roles"]}
    assert roles == {"dev-deployer", "dev-admin", "prod-admin"}
    left = {
        s["Description"]
        for s in moto_client(moto_url, "ec2").describe_snapshots(
            Filters=[{"Name": "description", "Values": ["nightly *"]}]
        )["Snapshots"]
    }
    assert left == {"nightly dev 2", "nightly dev-ish", "nightly prod"}

    # the audit trail: every attempt, with agent, session, operation, ARN and result
    events = broker.call("GET", "/audit", params={"agent": "janitor", "limit": 5000}).json()
    decisions = [
        e for e in events if e["source"] == "aws" and e["result"] in ("allow", "deny", "pending")
    ]
    assert all(e["agent"] == "janitor" and e["session_id"] for e in decisions)
    assert len({e["session_id"] for e in decisions}) == 1
    seen = {(e["action"], e["resource"], e["result"]) for e in decisions}
    assert ("s3:DeleteBucket", "arn:aws:s3:::prod-data", "deny") in seen
    assert ("s3:DeleteObject", "arn:aws:s3:::prod-data/ledger.db", "deny") in seen
    assert ("iam:DeleteRole", f"arn:aws:iam::{account}:role/prod-admin", "deny") in seen
    assert ("iam:DeleteRole", f"arn:aws:iam::{account}:role/dev-runner", "pending") in seen
    assert ("iam:DeleteRole", f"arn:aws:iam::{account}:role/dev-runner", "allow") in seen
    assert ("s3:DeleteObject", "arn:aws:s3:::dev-app/a.txt", "allow") in seen
    assert (
        "cloudwatch:DeleteAlarms",
        f"arn:aws:cloudwatch:us-east-1:{account}:alarm:dev-cli",
        "allow",
    ) in seen
    assert all(e["attributes"].get("operation") for e in decisions)
    completions = [e for e in events if e["source"] == "aws" and e["result"] in ("ok", "error")]
    assert completions, "forwarded calls are audited once they complete"
