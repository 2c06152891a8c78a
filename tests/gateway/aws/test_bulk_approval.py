"""Approvals at human scale through the broker: ``aws s3 rb --force`` on a dev bucket of
1,000 objects, with the real aws CLI against moto, asks a human twice — once for the
objects (one group: prefix, count, first items), once for the bucket — and the audit trail
still has every single deletion with the approval it used."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.support.aws import aws_cli, issue_aws_keys, moto_client, set_aws_credentials
from tests.support.server import RunningTether

OBJECTS = 1000
POLICY = 'permit(principal, action, resource) when { resource.arn like "arn:aws:s3:::dev-*" };'


def _approvals(tether: RunningTether) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = tether.call(
        "GET", "/approvals", params={"project": "bulk"}
    ).json()
    return found


def test_rb_force_on_a_thousand_objects_needs_two_approvals(
    broker: RunningTether, moto_url: str, tmp_path: Path
) -> None:
    s3 = moto_client(moto_url, "s3")
    s3.create_bucket(Bucket="dev-bulk")
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: s3.put_object(Bucket="dev-bulk", Key=f"logs/{i:04}.txt",
                                              Body=b"x"), range(OBJECTS)))  # fmt: skip
    broker.create_project("bulk", policy=POLICY)
    broker.create_agent("sweeper", "bulk")
    set_aws_credentials(broker, "bulk", moto_url)
    pair = issue_aws_keys(broker, "sweeper")

    # run 1: every DeleteObject is refused and joins one pending group
    first = aws_cli(broker, pair, tmp_path, "s3", "rb", "s3://dev-bulk", "--force", timeout=300)
    assert first.returncode != 0 and "pending" in first.stderr, first.stderr[-2000:]
    (group,) = _approvals(broker)
    assert group["state"] == "pending" and group["action"] == "s3:DeleteObject"
    assert group["prefix"] == "arn:aws:s3:::dev-bulk/logs/"
    assert group["count"] == OBJECTS and len(group["items"]) == 10
    assert all(i.startswith("arn:aws:s3:::dev-bulk/logs/") for i in group["items"])
    assert s3.list_objects_v2(Bucket="dev-bulk")["KeyCount"] == OBJECTS, "nothing deleted"

    approved = broker.call("POST", f"/approvals/{group['id']}/approve", json={})
    assert approved.json()["max_uses"] == OBJECTS, approved.text

    # run 2: the objects go under the one grant; the bucket asks once for itself
    second = aws_cli(broker, pair, tmp_path, "s3", "rb", "s3://dev-bulk", "--force", timeout=300)
    assert "remove_bucket failed" in second.stderr, second.stderr[-2000:]
    assert s3.list_objects_v2(Bucket="dev-bulk")["KeyCount"] == 0
    pending = [a for a in _approvals(broker) if a["state"] == "pending"]
    assert [(a["action"], a["resource"]) for a in pending] == [
        ("s3:DeleteBucket", "arn:aws:s3:::dev-bulk")
    ]
    assert broker.call("POST", f"/approvals/{pending[0]['id']}/approve", json={}).is_success

    # run 3: the bucket goes
    third = aws_cli(broker, pair, tmp_path, "s3", "rb", "s3://dev-bulk", "--force", timeout=300)
    assert third.returncode == 0, third.stderr[-2000:]
    assert "dev-bulk" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    states = {a["id"]: a["state"] for a in _approvals(broker)}
    assert len(states) == 2 and set(states.values()) == {"used"}, states

    # the audit trail: each deletion, with the approval it used
    events = broker.call("GET", "/audit", params={"agent": "sweeper", "limit": 10000}).json()
    allowed = [
        e for e in events
        if e["source"] == "aws" and e["action"] == "s3:DeleteObject" and e["result"] == "allow"
    ]  # fmt: skip
    assert len({e["resource"] for e in allowed}) == OBJECTS == len(allowed)
    assert {e["attributes"].get("approval_id") for e in allowed} == {group["id"]}
