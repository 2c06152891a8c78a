"""The AWS broker's wire behaviour: large and chunked transfers, presigned URLs, virtual
hosts, signature and key errors in each service's format, kills."""

from __future__ import annotations

import datetime
import io
import json
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from unittest import mock

import boto3
import httpx
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.support.aws import (
    MOTO_KEY,
    REGION,
    AgentPair,
    agent_client,
    issue_aws_keys,
    moto_client,
    set_aws_credentials,
)
from tests.support.raw_http import read_answer
from tests.support.server import PERMIT_ALL, RunningTether
from tether.gateway.aws.chunked import ChunkChain
from tether.gateway.aws.door import WAIT_HEADER
from tether.gateway.aws.sigv4 import HASHED_OFF_LOOP_BYTES
from tether.web.heavy_work import HEAVY_BODY_BYTES
from tether.web.shared_lane import HEAVY_WORK_KEY

PATIENT = 120.0
"""Seconds a test waits for one answer: a loaded CI machine has taken over 10 s."""

MB = 1024 * 1024


def _project(broker: RunningTether, moto_url: str, name: str) -> AgentPair:
    broker.create_project(name, policy=PERMIT_ALL)
    broker.create_agent(f"{name}-agent", name)
    set_aws_credentials(broker, name, moto_url)
    return issue_aws_keys(broker, f"{name}-agent")


def _create_table(ddb: Any, name: str) -> None:
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def _code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def test_large_multipart_upload_and_ranged_download_pass_intact(
    broker: RunningTether, moto_url: str
) -> None:
    pair = _project(broker, moto_url, "big")
    moto_client(moto_url, "s3").create_bucket(Bucket="big-bucket")
    data = os.urandom(20 * MB)
    s3 = agent_client(broker, pair, "s3")
    transfer = TransferConfig(multipart_threshold=8 * MB, multipart_chunksize=8 * MB)
    s3.upload_fileobj(io.BytesIO(data), "big-bucket", "blob", Config=transfer)
    direct = moto_client(moto_url, "s3").get_object(Bucket="big-bucket", Key="blob")
    assert direct["Body"].read() == data
    assert direct["ETag"].endswith('-3"')
    out = io.BytesIO()
    s3.download_fileobj("big-bucket", "blob", out, Config=transfer)
    assert out.getvalue() == data
    head = s3.head_object(Bucket="big-bucket", Key="blob")
    assert head["ContentLength"] == len(data) and head["ETag"] == direct["ETag"]
    single = os.urandom(5 * MB + 123)
    s3.put_object(Bucket="big-bucket", Key="single", Body=single, ChecksumAlgorithm="SHA256")
    assert s3.get_object(Bucket="big-bucket", Key="single")["Body"].read() == single


def _signed_chunk_upload(
    broker: RunningTether,
    pair: AgentPair,
    path: str,
    chunks: list[bytes],
    tamper: bool = False,
    no_framing: bool = False,
) -> httpx.Response:
    """What SDKs that sign every chunk send (STREAMING-AWS4-HMAC-SHA256-PAYLOAD)."""
    url = f"{broker.url}/aws{path}"
    decoded = sum(len(c) for c in chunks)
    body_len = sum(
        len(f"{len(c):x};chunk-signature=") + 64 + 2 + len(c) + 2 for c in [*chunks, b""]
    )
    request = AWSRequest(
        method="PUT",
        url=url,
        headers={
            "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
            "Content-Encoding": "aws-chunked",
            "x-amz-decoded-content-length": str(decoded),
            "Content-Length": str(body_len),
        },
    )

    class _Preset(S3SigV4Auth):  # type: ignore[misc]
        def payload(self, request: AWSRequest) -> str:
            return "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"

    auth = _Preset(Credentials(pair.access_key_id, pair.secret_access_key), "s3", "us-east-1")
    auth.add_auth(request)
    seed = request.headers["Authorization"].rsplit("Signature=", 1)[1]
    chain = ChunkChain(auth, request.context["timestamp"], seed)
    body = b""
    for chunk in [*chunks, b""]:
        signature = chain.next(chunk)
        if tamper and chunk:
            signature = "0" * 64
        body += f"{len(chunk):x};chunk-signature={signature}\r\n".encode() + chunk + b"\r\n"
    assert len(body) == body_len
    if no_framing:
        body = b"f" * body_len  # one "header line" as long as the body, no CRLF anywhere
    return httpx.put(url, headers=dict(request.headers.items()), content=body, timeout=30)


def test_signed_chunks_are_verified_and_re_signed(broker: RunningTether, moto_url: str) -> None:
    pair = _project(broker, moto_url, "chunks")
    moto_client(moto_url, "s3").create_bucket(Bucket="chunk-bucket")
    chunks = [os.urandom(64 * 1024), os.urandom(64 * 1024), os.urandom(1000)]
    answer = _signed_chunk_upload(broker, pair, "/chunk-bucket/signed", chunks)
    assert answer.status_code == 200, answer.text
    stored = moto_client(moto_url, "s3").get_object(Bucket="chunk-bucket", Key="signed")
    assert stored["Body"].read() == b"".join(chunks)
    refused = _signed_chunk_upload(broker, pair, "/chunk-bucket/tampered", chunks, tamper=True)
    assert refused.status_code == 403 and b"SignatureDoesNotMatch" in refused.content
    with pytest.raises(ClientError):
        moto_client(moto_url, "s3").head_object(Bucket="chunk-bucket", Key="tampered")
    unframed = _signed_chunk_upload(
        broker, pair, "/chunk-bucket/unframed", [os.urandom(512 * 1024)], no_framing=True
    )
    assert 400 <= unframed.status_code < 500, unframed.text


def test_presigned_urls_and_virtual_hosted_buckets(broker: RunningTether, moto_url: str) -> None:
    pair = _project(broker, moto_url, "presign")
    direct = moto_client(moto_url, "s3")
    direct.create_bucket(Bucket="shared-bucket")
    direct.put_object(Bucket="shared-bucket", Key="report.txt", Body=b"quarterly")
    s3 = agent_client(broker, pair, "s3", signature_version="s3v4")
    legacy = agent_client(broker, pair, "s3").generate_presigned_url(
        "get_object", Params={"Bucket": "shared-bucket", "Key": "report.txt"}
    )
    assert b"Signature Version 2" in httpx.get(legacy, timeout=PATIENT).content
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": "shared-bucket", "Key": "report.txt"}, ExpiresIn=60
    )
    got = httpx.get(url, timeout=PATIENT)
    assert got.content == b"quarterly", (url, got.text)
    forged = url.replace("X-Amz-Signature=", "X-Amz-Signature=0")
    assert b"SignatureDoesNotMatch" in httpx.get(forged[: len(url)], timeout=PATIENT).content
    port = broker.url.rsplit(":", 1)[1]
    virtual = _virtual_hosted_client(broker, pair)
    calls: list[str] = []
    virtual.meta.events.register("before-send", lambda request, **_: calls.append(request.url))
    with mock.patch("socket.getaddrinfo", _resolve_localhost_subdomains()):
        body = virtual.get_object(Bucket="shared-bucket", Key="report.txt")["Body"].read()
    assert body == b"quarterly"
    assert calls[0].startswith(f"http://shared-bucket.localhost:{port}/")


def _virtual_hosted_client(broker: RunningTether, pair: AgentPair) -> Any:
    """boto3 addressing buckets as ``BUCKET.localhost:PORT`` (``_resolve_localhost_subdomains``)."""
    port = broker.url.rsplit(":", 1)[1]
    return boto3.client(
        "s3",
        endpoint_url=f"http://localhost:{port}/aws",
        region_name="us-east-1",
        aws_access_key_id=pair.access_key_id,
        aws_secret_access_key=pair.secret_access_key,
        config=Config(s3={"addressing_style": "virtual"}, retries={"max_attempts": 1}),
    )


def _resolve_localhost_subdomains() -> Any:
    import socket

    real = socket.getaddrinfo

    def resolve(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.endswith(".localhost"):
            host = "127.0.0.1"
        return real(host, *args, **kwargs)

    return resolve


def test_signature_and_key_errors_in_each_service_format(
    broker: RunningTether, moto_url: str
) -> None:
    pair = _project(broker, moto_url, "errors")
    wrong = AgentPair(pair.access_key_id, "not-the-secret-000000000000000000000000")
    unknown = AgentPair("AKTTUNKNOWN000000000", pair.secret_access_key)
    for service, call, bad_key in (
        ("s3", lambda c: c.list_buckets(), "InvalidAccessKeyId"),
        ("iam", lambda c: c.list_roles(), "InvalidClientTokenId"),
        ("cloudwatch", lambda c: c.describe_alarms(), "InvalidClientTokenId"),
        ("logs", lambda c: c.describe_log_groups(), "InvalidClientTokenId"),
        ("ec2", lambda c: c.describe_snapshots(OwnerIds=["self"]), "AuthFailure"),
    ):
        with pytest.raises(ClientError) as bad_signature:
            call(agent_client(broker, wrong, service))
        assert _code(bad_signature) == "SignatureDoesNotMatch", service
        with pytest.raises(ClientError) as unknown_key:
            call(agent_client(broker, unknown, service))
        assert _code(unknown_key) == bad_key, service
    skewed = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=20)
    with (
        mock.patch("botocore.auth.get_current_datetime", return_value=skewed),
        pytest.raises(ClientError) as too_old,
    ):
        agent_client(broker, pair, "s3").list_buckets()
    assert _code(too_old) == "RequestTimeTooSkewed"
    assert httpx.get(f"{broker.url}/aws/", timeout=PATIENT).status_code == 403
    sampled = broker.call("GET", "/audit", params={"action": "auth:refused"}).json()
    assert [e for e in sampled if e["source"] == "aws"], "refusals are sampled into the trail"
    scraped = httpx.get(
        f"{broker.url}/metrics", headers={"Authorization": f"Bearer {broker.admin_token}"}
    ).text
    counted = [
        line
        for line in scraped.splitlines()
        if line.startswith("tether_unauthenticated_refusals_total")
        and 'door="aws"' in line
        and 'code="SignatureDoesNotMatch"' in line
    ]
    assert counted and float(counted[0].rsplit(" ", 1)[1]) >= 5, "every bad signature counted"

    # rotating one agent's pair revokes only that pair
    other = issue_aws_keys(broker, "errors-agent")
    with pytest.raises(ClientError) as revoked:
        agent_client(broker, pair, "s3").list_buckets()
    assert _code(revoked) == "InvalidAccessKeyId"
    assert "revoked" in str(revoked.value)
    assert (
        agent_client(broker, other, "s3").list_buckets()["ResponseMetadata"]["HTTPStatusCode"]
        == 200
    )
    assert broker.call("DELETE", "/agents/errors-agent/aws-keys").json()["revoked"] == 1
    with pytest.raises(ClientError) as gone:
        agent_client(broker, other, "iam").list_roles()
    assert _code(gone) == "InvalidClientTokenId"
    listed = broker.call("GET", "/agents/errors-agent/aws-keys").json()
    assert len(listed) == 2 and all(k["revoked_at"] for k in listed)
    assert "secret" not in str(listed).lower()


def test_kill_of_agent_or_project_stops_the_broker(broker: RunningTether, moto_url: str) -> None:
    pair = _project(broker, moto_url, "killme")
    s3 = agent_client(broker, pair, "s3")
    s3.list_buckets()
    assert (
        broker.call("POST", "/agents/killme-agent/stop", json={"reason": "runaway"}).status_code
        == 200
    )
    with pytest.raises(ClientError) as stopped:
        s3.list_buckets()
    assert _code(stopped) == "AccessDenied" and "runaway" in str(stopped.value)
    broker.call("POST", "/agents/killme-agent/release", json={})
    s3.list_buckets()
    assert (
        broker.call("POST", "/projects/killme/pause", json={"reason": "incident"}).status_code
        == 200
    )
    with pytest.raises(ClientError) as paused:
        agent_client(broker, pair, "iam").list_roles()
    assert _code(paused) == "AccessDenied" and "incident" in str(paused.value)


def test_unmappable_operations_and_credential_vending_are_denied(
    broker: RunningTether, moto_url: str
) -> None:
    pair = _project(broker, moto_url, "unmapped")
    sts = agent_client(broker, pair, "sts")
    with pytest.raises(ClientError) as vending:
        sts.get_session_token()
    assert _code(vending) == "AccessDenied"
    assert "sts:GetSessionToken" in str(vending.value)
    assert sts.get_caller_identity()["Account"] == "123456789012"


_POOL = "us-east-1:00000000-0000-0000-0000-000000000000"
_VENDING = [
    ("iam", "create_login_profile", {"UserName": "vending-user", "Password": "Agent-set-1!"}),
    ("iam", "create_service_specific_credential",
     {"UserName": "vending-user", "ServiceName": "codecommit.amazonaws.com"}),
    ("ecr", "get_authorization_token", {}),
    ("cognito-identity", "get_credentials_for_identity", {"IdentityId": _POOL}),
    ("cognito-identity", "get_open_id_token_for_developer_identity",
     {"IdentityPoolId": _POOL, "Logins": {"login.tether.test": "agent"}}),
    ("redshift", "get_cluster_credentials", {"DbUser": "agent", "ClusterIdentifier": "dw"}),
    ("redshift-serverless", "get_credentials", {"workgroupName": "warehouse"}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("service", "method", "params"), _VENDING, ids=[f"{s}.{m}" for s, m, _ in _VENDING]
)
def test_every_operation_that_hands_out_credentials_is_refused(
    broker: RunningTether, moto_url: str, service: str, method: str, params: dict[str, Any]
) -> None:
    """A console password, a service-specific credential, a registry login, Cognito's
    AWS keys and OpenID token, a database login: under a policy permitting everything,
    each reached AWS and its answer reached the agent, who could then act around tether."""
    pair = _project(broker, moto_url, f"vend-{method}"[:40].replace("_", "-"))
    client = agent_client(broker, pair, service)
    operation = client.meta.method_to_api_mapping[method]
    # botocore sends GetCredentialsForIdentity unsigned, which tether refuses before
    # deciding it; an agent can sign any call
    client.meta.events.register_first(
        f"choose-signer.{client.meta.service_model.service_id.hyphenize()}.{operation}",
        lambda **_: "v4",
    )
    if method == "create_login_profile":
        moto_client(moto_url, "iam").create_user(UserName="vending-user")
    with pytest.raises(ClientError) as refused:
        getattr(client, method)(**params)
    assert _code(refused).startswith("AccessDenied"), str(refused.value)
    assert f"{service}:{operation} hands out credentials" in str(refused.value)
    if method == "create_login_profile":
        with pytest.raises(ClientError) as none:
            moto_client(moto_url, "iam").get_login_profile(UserName="vending-user")
        assert _code(none) == "NoSuchEntity", "moto never received the call"


def test_a_bucket_sub_resource_is_decided_as_the_action_aws_checks(
    broker: RunningTether, moto_url: str
) -> None:
    """``PUT ?replication`` (it can copy every object to another account) was decided as
    ``s3:PutBucketReplication`` and ``PUT ?inventory`` as ``s3:CreateBucket``: a rule
    forbidding the actions AWS checks (``s3:PutReplicationConfiguration``,
    ``s3:PutInventoryConfiguration``) never fired, and S3 got the calls."""
    pair = _project(broker, moto_url, "subresources")
    broker.apply_policy(
        "subresources",
        "permit(principal, action, resource);\n"
        '@reason("replication and inventory stay as they are")\n'
        'forbid(principal, action in [Action::"s3:PutReplicationConfiguration",\n'
        '  Action::"s3:PutInventoryConfiguration"], resource);\n',
    )
    direct = moto_client(moto_url, "s3")
    direct.create_bucket(Bucket="sub-bucket")
    direct.put_bucket_versioning(Bucket="sub-bucket", VersioningConfiguration={"Status": "Enabled"})
    s3 = agent_client(broker, pair, "s3")
    with pytest.raises(ClientError) as replication:
        s3.put_bucket_replication(
            Bucket="sub-bucket",
            ReplicationConfiguration={
                "Role": "arn:aws:iam::123456789012:role/replicator",
                "Rules": [
                    {
                        "ID": "everything",
                        "Status": "Enabled",
                        "Prefix": "",
                        "Destination": {"Bucket": "arn:aws:s3:::another-accounts-bucket"},
                    }
                ],
            },
        )
    assert _code(replication) == "AccessDenied"
    assert "replication and inventory stay" in str(replication.value), str(replication.value)
    with pytest.raises(ClientError) as no_replication:
        direct.get_bucket_replication(Bucket="sub-bucket")
    assert _code(no_replication) == "ReplicationConfigurationNotFoundError"
    with pytest.raises(ClientError) as inventory:
        s3.put_bucket_inventory_configuration(
            Bucket="sub-bucket",
            Id="everything",
            InventoryConfiguration={
                "Id": "everything",
                "IsEnabled": True,
                "IncludedObjectVersions": "All",
                "Schedule": {"Frequency": "Daily"},
                "Destination": {
                    "S3BucketDestination": {
                        "Bucket": "arn:aws:s3:::another-accounts-bucket",
                        "Format": "CSV",
                    }
                },
            },
        )
    assert _code(inventory) == "AccessDenied"
    assert "replication and inventory stay" in str(inventory.value), str(inventory.value)
    listed = direct.list_bucket_inventory_configurations(Bucket="sub-bucket")
    assert not listed.get("InventoryConfigurationList"), "moto never received the call"

    s3.put_bucket_tagging(Bucket="sub-bucket", Tagging={"TagSet": [{"Key": "t", "Value": "v"}]})
    assert direct.get_bucket_tagging(Bucket="sub-bucket")["TagSet"] == [{"Key": "t", "Value": "v"}]
    trail = broker.call("GET", "/audit", params={"agent": "subresources-agent"}).json()
    assert {(e["action"], e["result"]) for e in trail} >= {
        ("s3:PutReplicationConfiguration", "deny"),
        ("s3:PutInventoryConfiguration", "deny"),
        ("s3:PutBucketTagging", "allow"),
    }

    # removing the bucket's encryption is s3:PutEncryptionConfiguration, and a deletion
    direct.put_bucket_encryption(
        Bucket="sub-bucket",
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    with pytest.raises(ClientError) as held:
        s3.delete_bucket_encryption(Bucket="sub-bucket")
    assert "approval" in str(held.value), str(held.value)
    assert direct.get_bucket_encryption(Bucket="sub-bucket")["ServerSideEncryptionConfiguration"]


def test_a_bucket_sub_resource_tether_does_not_know_is_denied_by_name(
    broker: RunningTether, moto_url: str
) -> None:
    """A sub-resource tether had no entry for was decided as the plain call: this
    ``PUT /bucket?bucketQuantumConfiguration`` as ``s3:CreateBucket``, permitted here,
    so S3 got it. Now it is denied, naming the sub-resource, whatever the policy."""
    pair = _project(broker, moto_url, "unknownsub")
    s3 = agent_client(broker, pair, "s3")

    def add_sub_resource(request: AWSRequest, **_: Any) -> None:
        request.url += ("&" if "?" in request.url else "?") + "bucketQuantumConfiguration"

    s3.meta.events.register("before-sign.s3.CreateBucket", add_sub_resource)
    with pytest.raises(ClientError) as refused:
        s3.create_bucket(Bucket="quantum-bucket")
    assert _code(refused) == "AccessDenied"
    assert "?bucketQuantumConfiguration" in str(refused.value), str(refused.value)
    buckets = moto_client(moto_url, "s3").list_buckets()["Buckets"]
    assert "quantum-bucket" not in {b["Name"] for b in buckets}, "moto never received the call"


def test_unsigned_payload_trailer_with_checksum_passes_through(
    broker: RunningTether, moto_url: str
) -> None:
    """What boto3 and aws-cli send over HTTPS by default (STREAMING-UNSIGNED-PAYLOAD-TRAILER
    with a CRC32 trailer), built by botocore's own aws-chunked wrapper."""
    from botocore.httpchecksum import AwsChunkedWrapper, Crc32Checksum

    pair = _project(broker, moto_url, "trailer")
    moto_client(moto_url, "s3").create_bucket(Bucket="trailer-bucket")
    data = os.urandom(3 * MB + 17)
    body = AwsChunkedWrapper(
        io.BytesIO(data), checksum_cls=Crc32Checksum, checksum_name="x-amz-checksum-crc32"
    ).read()
    url = f"{broker.url}/aws/trailer-bucket/trailed"
    request = AWSRequest(
        method="PUT",
        url=url,
        headers={
            "Content-Encoding": "aws-chunked",
            "x-amz-decoded-content-length": str(len(data)),
            "x-amz-trailer": "x-amz-checksum-crc32",
            "x-amz-sdk-checksum-algorithm": "CRC32",
            "Content-Length": str(len(body)),
        },
    )

    class _Trailer(S3SigV4Auth):  # type: ignore[misc]
        def payload(self, request: AWSRequest) -> str:
            return "STREAMING-UNSIGNED-PAYLOAD-TRAILER"

    _Trailer(Credentials(pair.access_key_id, pair.secret_access_key), "s3", "us-east-1").add_auth(
        request
    )
    answer = httpx.put(url, headers=dict(request.headers.items()), content=body, timeout=30)
    assert answer.status_code == 200, answer.text
    stored = moto_client(moto_url, "s3").get_object(Bucket="trailer-bucket", Key="trailed")
    assert stored["Body"].read() == data


def test_assumed_role_per_agent(broker: RunningTether, moto_url: str) -> None:
    broker.create_project("assumed", policy=PERMIT_ALL)
    broker.create_agent("assumed-agent", "assumed")
    set_aws_credentials(
        broker, "assumed", moto_url, role_arn="arn:aws:iam::123456789012:role/agents"
    )
    pair = issue_aws_keys(broker, "assumed-agent")
    moto_client(moto_url, "s3").create_bucket(Bucket="assumed-bucket")
    s3 = agent_client(broker, pair, "s3")
    s3.put_object(Bucket="assumed-bucket", Key="k", Body=b"as the agent's role session")
    assert s3.get_object(Bucket="assumed-bucket", Key="k")["Body"].read().startswith(b"as the")
    sessions = {k[1]: v[1] for k, v in broker.runtime.aws._assumed.items()}
    assert sessions["assumed-agent"].access_key.startswith("ASIA")  # STS session credentials


def test_a_kill_cuts_a_transfer_already_streaming(broker: RunningTether, moto_url: str) -> None:
    pair = _project(broker, moto_url, "cutme")
    moto = moto_client(moto_url, "s3")
    moto.create_bucket(Bucket="cut-bucket")
    moto.put_object(Bucket="cut-bucket", Key="big", Body=os.urandom(32 * MB))
    # A read timeout longer than any wait here: a cut must end the transfer, not stall it.
    s3 = agent_client(broker, pair, "s3", read_timeout=30)
    body = s3.get_object(Bucket="cut-bucket", Key="big")["Body"]
    received = len(body.read(MB))
    stopped = broker.call("POST", "/agents/cutme-agent/stop", json={"reason": "exfiltration"})
    assert stopped.status_code == 200
    time.sleep(1.0)
    with pytest.raises(Exception) as cut:  # the SDK's error for a body cut short varies
        while chunk := body.read(MB):
            received += len(chunk)
    assert "timeout" not in repr(cut.value).lower(), "the connection was closed, not left open"
    assert received < 32 * MB, "the download was cut"
    assert _completion_status(broker, "cutme-agent", "s3:GetObject:completed") == 423


def _completion_status(broker: RunningTether, agent: str, action: str) -> int:
    """The status the trail gives the transfer's end, written once the cut reached the
    broker (the client can see the cut a moment before)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        params = {"agent": agent, "action": action}
        if completed := broker.call("GET", "/audit", params=params).json():
            return int(completed[-1]["attributes"]["status"])
        time.sleep(0.1)
    raise AssertionError(f"no {action} event in the trail")


def test_a_body_past_the_hashing_threshold_is_verified_and_signed_on_a_thread(
    broker: RunningTether, moto_url: str
) -> None:
    """A DynamoDB item near its 400 KB limit: its body is hashed off the loop, for the
    agent's signature and for the upstream one, and the call goes through unchanged."""
    pair = _project(broker, moto_url, "bighash")
    ddb = agent_client(broker, pair, "dynamodb")
    _create_table(ddb, "bighash")
    blob = "y" * (HASHED_OFF_LOOP_BYTES + 50_000)
    ddb.put_item(TableName="bighash", Item={"id": {"S": "1"}, "blob": {"S": blob}})
    assert ddb.get_item(TableName="bighash", Key={"id": {"S": "1"}})["Item"]["blob"]["S"] == blob
    wrong = AgentPair(pair.access_key_id, "not-the-secret-000000000000000000000000")
    forged = agent_client(broker, wrong, "dynamodb")
    with pytest.raises(ClientError) as refused:
        forged.put_item(TableName="bighash", Item={"id": {"S": "2"}, "blob": {"S": blob}})
    assert _code(refused) == "SignatureDoesNotMatch"


def test_a_body_arriving_in_pieces_is_read_whole_before_its_signature_is_checked(
    broker: RunningTether, moto_url: str
) -> None:
    """A signed DynamoDB call whose body reaches tether in two sends, 0.3 s apart (a
    large body on a busy network): the signature covers the whole body, so tether must
    read all of it before checking (reading what had arrived refused it as forged)."""
    pair = _project(broker, moto_url, "pieces")
    _create_table(agent_client(broker, pair, "dynamodb"), "pieces")
    body = json.dumps(
        {"TableName": "pieces", "Item": {"id": {"S": "1"}, "blob": {"S": "z" * 100_000}}}
    ).encode()
    url = f"{broker.url}/aws/"
    request = AWSRequest(
        method="POST",
        url=url,
        data=body,
        headers={
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": "DynamoDB_20120810.PutItem",
        },
    )
    SigV4Auth(Credentials(pair.access_key_id, pair.secret_access_key), "dynamodb", REGION).add_auth(
        request
    )
    host, port = broker.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        head = "".join(f"{name}: {value}\r\n" for name, value in request.headers.items())
        conn.sendall(
            f"POST /aws/ HTTP/1.1\r\nHost: {host}:{port}\r\n{head}"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body[:1000]
        )
        time.sleep(0.3)
        conn.sendall(body[1000:])
        answer = read_answer(conn)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:600]
    stored = moto_client(moto_url, "dynamodb").get_item(TableName="pieces", Key={"id": {"S": "1"}})
    assert stored["Item"]["blob"]["S"] == "z" * 100_000


def test_large_bodies_are_read_off_the_loop_and_mapped_as_small_ones_are(
    broker: RunningTether, moto_url: str
) -> None:
    """A JSON body (DynamoDB) and a DeleteObjects XML body past ``HEAVY_BODY_BYTES`` are
    read in the heavy-work lane: the same calls, resources and refusals as when read on
    the loop."""
    pair = _project(broker, moto_url, "largebody")
    lane = broker._runner.app[HEAVY_WORK_KEY]
    ddb = agent_client(broker, pair, "dynamodb")
    _create_table(ddb, "big")
    ddb.put_item(TableName="big", Item={"id": {"S": "1"}, "blob": {"S": "x" * 50_000}})
    item = ddb.get_item(TableName="big", Key={"id": {"S": "1"}})["Item"]
    assert item["blob"]["S"] == "x" * 50_000
    trail = broker.call(
        "GET", "/audit", params={"action": "dynamodb:PutItem", "agent": "largebody-agent"}
    ).json()
    assert [e["resource"] for e in trail if e["result"] == "allow"] == [
        "arn:aws:dynamodb:us-east-1:123456789012:table/big"
    ]
    s3 = agent_client(broker, pair, "s3")
    s3.create_bucket(Bucket="largebody-bucket")
    keys = [{"Key": f"reports/{n:05}.csv"} for n in range(100)]
    assert len(json.dumps(keys)) > HEAVY_BODY_BYTES
    with pytest.raises(ClientError) as held:
        s3.delete_objects(Bucket="largebody-bucket", Delete={"Objects": keys})
    assert _code(held) == "AccessDenied"
    assert "approval" in str(held.value), str(held.value)
    assert lane.most_running >= 1, "the large bodies were read in the lane"


def test_a_delete_objects_under_a_granted_prefix_and_an_unasked_one_spends_no_grant_first(
    broker: RunningTether, moto_url: str
) -> None:
    """One ``DeleteObjects`` whose keys fall under a prefix already granted and one no one
    was asked about: the look-ahead (one read of the approvals for all its keys) finds the
    second blocking, so only its group is asked for and the grant is not spent on a call
    that fails; approved too, the same call deletes every key under both grants."""
    pair = _project(broker, moto_url, "mixed")
    s3 = agent_client(broker, pair, "s3")
    s3.create_bucket(Bucket="mixed-bucket")
    direct = moto_client(moto_url, "s3")
    keys = [f"{part}/{n}" for part in ("a", "b") for n in range(5)]
    for key in keys:
        direct.put_object(Bucket="mixed-bucket", Key=key, Body=b"x")

    def delete(of: list[str]) -> None:
        s3.delete_objects(Bucket="mixed-bucket", Delete={"Objects": [{"Key": k} for k in of]})

    def approvals() -> dict[str, dict[str, Any]]:
        found = broker.call("GET", "/approvals", params={"project": "mixed"}).json()
        return {a["prefix"]: a for a in found}

    with pytest.raises(ClientError) as asked:
        delete(keys[:5])
    assert "approval" in str(asked.value), str(asked.value)
    group_a = approvals()["arn:aws:s3:::mixed-bucket/a/"]
    assert group_a["count"] == 5
    broker.call("POST", f"/approvals/{group_a['id']}/approve", json={}).raise_for_status()

    with pytest.raises(ClientError) as waiting:
        delete(keys)
    found = approvals()
    assert set(found) == {"arn:aws:s3:::mixed-bucket/a/", "arn:aws:s3:::mixed-bucket/b/"}
    group_b = found["arn:aws:s3:::mixed-bucket/b/"]
    assert group_b["id"] in str(waiting.value) and group_b["count"] == 5
    assert found["arn:aws:s3:::mixed-bucket/a/"]["uses"] == 0, "no grant spent on a refused call"
    assert direct.list_objects_v2(Bucket="mixed-bucket")["KeyCount"] == 10

    broker.call("POST", f"/approvals/{group_b['id']}/approve", json={}).raise_for_status()
    delete(keys)
    assert direct.list_objects_v2(Bucket="mixed-bucket").get("KeyCount", 0) == 0
    assert {prefix: a["uses"] for prefix, a in approvals().items()} == {
        "arn:aws:s3:::mixed-bucket/a/": 5,
        "arn:aws:s3:::mixed-bucket/b/": 5,
    }


MIDWAY_KEYS = 300
"""Enough keys that deciding them takes a while (a few milliseconds each): the approval
lands while they are decided."""


def test_a_grant_given_while_a_calls_keys_are_decided_is_spent_once_a_key(
    broker: RunningTether, moto_url: str
) -> None:
    """The look-ahead finds every key waiting for its group; the grant lands while the keys
    are decided, so the first ones wait for it and the rest go ahead on it. Waiting for the
    grant, the call decides only the keys that waited: no key is decided twice (which
    spent the grant twice over and asked for a second group), and the call goes ahead."""
    pair = _project(broker, moto_url, "midway")
    s3 = agent_client(broker, pair, "s3", read_timeout=PATIENT)
    s3.create_bucket(Bucket="midway-bucket")
    objects = {"Objects": [{"Key": f"logs/{n:04}"} for n in range(MIDWAY_KEYS)]}
    resources = sorted(f"arn:aws:s3:::midway-bucket/logs/{n:04}" for n in range(MIDWAY_KEYS))

    def groups() -> list[dict[str, Any]]:
        found = broker.call("GET", "/approvals", params={"project": "midway"}).json()
        return [a for a in found if a["prefix"] == "arn:aws:s3:::midway-bucket/logs/"]

    def deletions(after_seq: int) -> list[dict[str, Any]]:
        params = {"action": "s3:DeleteObject", "after_seq": after_seq, "limit": 1000}
        return list(broker.call("GET", "/audit", params=params).json())

    with pytest.raises(ClientError) as asked:
        s3.delete_objects(Bucket="midway-bucket", Delete=objects)
    assert "approval" in str(asked.value), str(asked.value)
    (group,) = groups()
    before = max(e["seq"] for e in deletions(0))

    def wait_for_grant(request: AWSRequest, **_: Any) -> None:
        request.headers[WAIT_HEADER] = "30"

    s3.meta.events.register("before-send.s3.DeleteObjects", wait_for_grant)
    with ThreadPoolExecutor(1) as pool:
        call = pool.submit(s3.delete_objects, Bucket="midway-bucket", Delete=objects)
        deadline = time.monotonic() + PATIENT
        while not deletions(before) and time.monotonic() < deadline:
            time.sleep(0.005)
        broker.call("POST", f"/approvals/{group['id']}/approve", json={}).raise_for_status()
        answer = call.result(timeout=PATIENT)

    assert len(answer["Deleted"]) == MIDWAY_KEYS and not answer.get("Errors")
    trail = deletions(before)
    waited = [e for e in trail if e["result"] == "pending"]
    went_ahead = [e for e in trail if e["result"] == "allow"]
    assert 0 < len(waited) < MIDWAY_KEYS, "the grant landed while the keys were decided"
    assert sorted(e["resource"] for e in went_ahead) == resources, "each key decided once"
    (granted,) = groups()
    assert granted["id"] == group["id"] and granted["uses"] == MIDWAY_KEYS


@pytest.mark.parametrize("region", ["evil.example", "us-east-1.evil.example?x="])
def test_a_scope_whose_region_is_not_an_aws_region_is_refused(
    broker: RunningTether, moto_url: str, region: str
) -> None:
    """The scope's region makes the upstream host: a signed call with ``evil.example`` in
    it was sent to ``https://dynamodb.evil.example``, the project's access key id and
    session token in its ``Authorization`` header."""
    pair = _project(broker, moto_url, f"scope{abs(hash(region)) % 10_000}")
    body = b"{}"
    request = AWSRequest(
        method="POST",
        url=f"{broker.url}/aws/",
        data=body,
        headers={
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": "DynamoDB_20120810.ListTables",
        },
    )
    credentials = Credentials(pair.access_key_id, pair.secret_access_key)
    SigV4Auth(credentials, "dynamodb", region).add_auth(request)
    answer = httpx.post(request.url, content=body, headers=dict(request.headers), timeout=30)
    assert answer.status_code == 400, answer.text
    assert "AuthorizationHeaderMalformed" in answer.text and "not an AWS name" in answer.text


def test_an_approval_wait_of_nan_is_no_wait(broker: RunningTether, moto_url: str) -> None:
    """``float("nan")`` passed the clamp, and a deadline of NaN is never reached: the call
    asked and decided again, an audit event each time, for as long as tether ran."""
    pair = _project(broker, moto_url, "nanwait")
    s3 = agent_client(broker, pair, "s3", read_timeout=PATIENT)
    s3.create_bucket(Bucket="nanwait-bucket")
    s3.put_object(Bucket="nanwait-bucket", Key="a", Body=b"x")

    def nan_wait(request: AWSRequest, **_: Any) -> None:
        request.headers[WAIT_HEADER] = "nan"

    s3.meta.events.register("before-send.s3.DeleteObject", nan_wait)
    with ThreadPoolExecutor(1) as pool:
        call = pool.submit(s3.delete_object, Bucket="nanwait-bucket", Key="a")
        with pytest.raises(ClientError) as asked:
            call.result(timeout=20)
    assert "approval" in str(asked.value), str(asked.value)


def test_a_virtual_hosted_key_that_starts_with_another_buckets_name_stays_in_its_bucket(
    broker: RunningTether, moto_url: str
) -> None:
    """``scratch.localhost/scratch-prod/db.dump`` is the key ``scratch-prod/db.dump`` of
    bucket ``scratch``, and is decided so; tether forwarded it path-style as it came (the
    key started with the bucket's name), so S3 read bucket ``scratch-prod``, which the
    policy keeps the agent out of."""
    pair = _project(broker, moto_url, "vhost")
    broker.apply_policy(
        "vhost",
        'permit(principal, action, resource) when { resource.arn like "arn:aws:s3:::scratch/*" };',
    )
    direct = moto_client(moto_url, "s3")
    for bucket in ("scratch", "scratch-prod"):
        direct.create_bucket(Bucket=bucket)
    direct.put_object(Bucket="scratch-prod", Key="db.dump", Body=b"production secrets")
    virtual = _virtual_hosted_client(broker, pair)
    resolving = mock.patch("socket.getaddrinfo", _resolve_localhost_subdomains())
    with resolving, pytest.raises(ClientError) as missing:
        virtual.get_object(Bucket="scratch", Key="scratch-prod/db.dump")
    assert _code(missing) == "NoSuchKey", "read in bucket scratch, where there is no such key"


@pytest.mark.parametrize(
    ("service", "method", "path", "headers", "refusal"),
    [
        ("lambda", "DELETE", "/2015-03-31/functions/prod-fn?Action=ListFunctions", {},
         "REST-style AWS API"),
        ("ec2", "GET", "/?Action=TerminateInstances&InstanceId.1=i-0123456789abcdef0",
         {"X-Amz-Target": "AmazonEC2.DescribeInstances"}, "naming its operation twice"),
        ("iam", "GET", "/?Action=GetUser&UserName=admin&UserName=scratch&Version=2010-05-08",
         {}, "is given twice"),
    ],
    ids=["rest-with-action", "target-and-action", "repeated-parameter"],
)  # fmt: skip
def test_a_request_aws_could_read_as_another_operation_is_refused(
    broker: RunningTether,
    moto_url: str,
    service: str,
    method: str,
    path: str,
    headers: dict[str, str],
    refusal: str,
) -> None:
    """tether decided a Lambda ``DELETE …/functions/prod-fn?Action=ListFunctions`` as
    ``lambda:ListFunctions`` (Lambda runs DeleteFunction), an EC2 call by its
    ``X-Amz-Target`` while EC2 reads its ``Action``, and a repeated parameter by its last
    value while AWS may read the first."""
    pair = _project(broker, moto_url, f"twice-{service}")
    request = AWSRequest(method=method, url=f"{broker.url}/aws{path}", headers=headers)
    credentials = Credentials(pair.access_key_id, pair.secret_access_key)
    SigV4Auth(credentials, service, REGION).add_auth(request)
    answer = httpx.request(method, request.url, headers=dict(request.headers), timeout=30)
    assert answer.status_code in (400, 403), answer.text
    assert refusal in answer.text


def test_tags_are_read_in_the_region_the_call_was_signed_for(
    broker: RunningTether, moto_url: str
) -> None:
    """A snapshot tagged ``env=prod`` in us-west-2, the project set to us-east-1: its tags
    were read in us-east-1, where it is not, so it read as untagged and the rule
    forbidding prod did not fire (the deletion only asked for an approval)."""
    pair = _project(broker, moto_url, "regions")
    broker.apply_policy(
        "regions",
        "permit(principal, action, resource);\n"
        '@reason("production is off limits")\n'
        'forbid(principal, action, resource) when { resource.tags.env == "prod" };\n',
    )
    west = boto3.client(
        "ec2", endpoint_url=moto_url, region_name="us-west-2",
        aws_access_key_id=MOTO_KEY[0], aws_secret_access_key=MOTO_KEY[1],
    )  # fmt: skip
    volume = west.create_volume(AvailabilityZone="us-west-2a", Size=1)["VolumeId"]
    snapshot = west.create_snapshot(
        VolumeId=volume,
        TagSpecifications=[{"ResourceType": "snapshot", "Tags": [{"Key": "env", "Value": "prod"}]}],
    )["SnapshotId"]
    agent = boto3.client(
        "ec2", endpoint_url=f"{broker.url}/aws", region_name="us-west-2",
        aws_access_key_id=pair.access_key_id, aws_secret_access_key=pair.secret_access_key,
        config=Config(retries={"max_attempts": 1}),
    )  # fmt: skip
    with pytest.raises(ClientError) as refused:
        agent.delete_snapshot(SnapshotId=snapshot)
    assert "production is off limits" in str(refused.value), str(refused.value)


def test_deleting_one_version_of_an_object_is_decided_as_deleting_a_version(
    broker: RunningTether, moto_url: str
) -> None:
    """``?versionId=`` (or ``<VersionId>`` in DeleteObjects) destroys that version for
    good; it was decided as ``s3:DeleteObject`` on the key, so a rule on
    ``s3:DeleteObjectVersion`` never fired (the deletion only asked for an approval)."""
    pair = _project(broker, moto_url, "versions")
    broker.apply_policy(
        "versions",
        "permit(principal, action, resource);\n"
        '@reason("versions are kept for good")\n'
        'forbid(principal, action == Action::"s3:DeleteObjectVersion", resource);\n',
    )
    direct = moto_client(moto_url, "s3")
    direct.create_bucket(Bucket="kept-versions")
    direct.put_bucket_versioning(
        Bucket="kept-versions", VersioningConfiguration={"Status": "Enabled"}
    )
    version = direct.put_object(Bucket="kept-versions", Key="ledger", Body=b"v1")["VersionId"]
    s3 = agent_client(broker, pair, "s3")
    with pytest.raises(ClientError) as one:
        s3.delete_object(Bucket="kept-versions", Key="ledger", VersionId=version)
    assert "versions are kept for good" in str(one.value), str(one.value)
    with pytest.raises(ClientError) as many:
        s3.delete_objects(
            Bucket="kept-versions",
            Delete={"Objects": [{"Key": "ledger", "VersionId": version}]},
        )
    assert "versions are kept for good" in str(many.value), str(many.value)
    assert direct.get_object(Bucket="kept-versions", Key="ledger", VersionId=version)
