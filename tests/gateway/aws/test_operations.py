"""AWS requests → actions on ARNs, without a server."""

from __future__ import annotations

import pytest

from tether.gateway.aws.errors import cbor_map
from tether.gateway.aws.operations import (
    AwsRequestView,
    UnreadableRequest,
    map_request,
)


def _view(
    method: str,
    path: str,
    query: str = "",
    service: str = "s3",
    body: bytes | None = None,
    host: str = "127.0.0.1:8080",
    **headers: str,
) -> AwsRequestView:
    pairs = [(k, v) for k, _, v in (p.partition("=") for p in query.split("&") if p)]
    return AwsRequestView(
        method=method,
        path=path,
        host=host,
        query=pairs,
        headers={k.replace("_", "-"): v for k, v in headers.items()},
        body=body,
        service=service,
        region="eu-west-1",
        account="111122223333",
    )


@pytest.mark.parametrize(
    ("method", "path", "query", "operation", "action", "resource"),
    [
        ("GET", "/", "", "ListBuckets", "s3:ListAllMyBuckets", "arn:aws:s3:::*"),
        ("GET", "/b", "list-type=2", "ListObjectsV2", "s3:ListBucket", "arn:aws:s3:::b"),
        ("PUT", "/b", "", "CreateBucket", "s3:CreateBucket", "arn:aws:s3:::b"),
        ("DELETE", "/b", "", "DeleteBucket", "s3:DeleteBucket", "arn:aws:s3:::b"),
        ("GET", "/b", "tagging", "GetBucketTagging", "s3:GetBucketTagging", "arn:aws:s3:::b"),
        ("GET", "/b/k%20x/y", "", "GetObject", "s3:GetObject", "arn:aws:s3:::b/k x/y"),
        ("HEAD", "/b/k", "", "HeadObject", "s3:GetObject", "arn:aws:s3:::b/k"),
        ("DELETE", "/b/k", "", "DeleteObject", "s3:DeleteObject", "arn:aws:s3:::b/k"),
        ("POST", "/b/k", "uploads", "CreateMultipartUpload", "s3:PutObject", "arn:aws:s3:::b/k"),
        ("PUT", "/b/k", "partNumber=1&uploadId=u", "UploadPart", "s3:PutObject",
         "arn:aws:s3:::b/k"),
        ("DELETE", "/b/k", "uploadId=u", "AbortMultipartUpload", "s3:AbortMultipartUpload",
         "arn:aws:s3:::b/k"),
    ],
)  # fmt: skip
def test_s3_operations(
    method: str, path: str, query: str, operation: str, action: str, resource: str
) -> None:
    call = map_request(_view(method, path, query))
    assert call.mapped and call.operation == operation
    assert [(t.action, t.resource) for t in call.targets] == [(action, resource)]


def test_virtual_hosted_bucket_and_copy_source() -> None:
    call = map_request(
        _view("PUT", "/dst", host="my-bucket.localhost:8080", x_amz_copy_source="/src-b/a%2Fb")
    )
    assert call.operation == "CopyObject" and call.bucket == "my-bucket"
    assert [(t.action, t.resource) for t in call.targets] == [
        ("s3:PutObject", "arn:aws:s3:::my-bucket/dst"),
        ("s3:GetObject", "arn:aws:s3:::src-b/a/b"),
    ]


def test_delete_objects_is_one_action_per_key() -> None:
    body = (
        b'<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Object><Key>a</Key></Object>'
        b"<Object><Key>b/c</Key></Object><Quiet>true</Quiet></Delete>"
    )
    call = map_request(_view("POST", "/bkt", "delete", body=body))
    assert [(t.action, t.resource) for t in call.targets] == [
        ("s3:DeleteObject", "arn:aws:s3:::bkt/a"),
        ("s3:DeleteObject", "arn:aws:s3:::bkt/b/c"),
    ]
    with pytest.raises(UnreadableRequest):
        map_request(_view("POST", "/bkt", "delete", body=b"<Delete><Object>"))


def test_query_protocol_iam_ec2_cloudwatch() -> None:
    iam = map_request(
        _view(
            "POST", "/", service="iam", body=b"Action=DeleteRole&RoleName=dev-x&Version=2010-05-08"
        )
    )
    assert [(t.action, t.resource) for t in iam.targets] == [
        ("iam:DeleteRole", "arn:aws:iam::111122223333:role/dev-x")
    ]
    ec2 = map_request(
        _view("POST", "/", service="ec2",
              body=b"Action=TerminateInstances&InstanceId.1=i-1&InstanceId.2=i-2")
    )  # fmt: skip
    assert [t.resource for t in ec2.targets] == [
        "arn:aws:ec2:eu-west-1:111122223333:instance/i-1",
        "arn:aws:ec2:eu-west-1:111122223333:instance/i-2",
    ]
    alarms = map_request(
        _view("POST", "/", service="monitoring",
              body=b"Action=DeleteAlarms&AlarmNames.member.1=a&AlarmNames.member.2=b")
    )  # fmt: skip
    assert [t.action for t in alarms.targets] == ["cloudwatch:DeleteAlarms"] * 2
    listed = map_request(_view("GET", "/", "Action=ListRoles", service="iam"))
    assert [t.resource for t in listed.targets] == ["arn:aws:iam::111122223333:*"]


def test_json_and_cbor_protocols() -> None:
    table = map_request(
        _view("POST", "/", service="dynamodb", body=b'{"TableName": "orders"}',
              X_Amz_Target="DynamoDB_20120810.DeleteTable")
    )  # fmt: skip
    assert table.protocol == "json"
    assert [t.resource for t in table.targets] == [
        "arn:aws:dynamodb:eu-west-1:111122223333:table/orders"
    ]
    group = map_request(
        _view("POST", "/", service="logs", body=b'{"logGroupName": "/app/dev"}',
              X_Amz_Target="Logs_20140328.DeleteLogGroup")
    )  # fmt: skip
    assert group.targets[0].resource == "arn:aws:logs:eu-west-1:111122223333:log-group:/app/dev"
    # CBOR: {"AlarmName": "dev-x"} as botocore's CloudWatch client sends it
    body = cbor_map({"AlarmName": "dev-x"})
    alarm = map_request(
        _view("POST", "/service/GraniteServiceVersion20100801/operation/PutMetricAlarm",
              service="monitoring", body=body, smithy_protocol="rpc-v2-cbor")
    )  # fmt: skip
    assert alarm.protocol == "cbor" and alarm.operation == "PutMetricAlarm"
    assert alarm.targets[0].resource == "arn:aws:cloudwatch:eu-west-1:111122223333:alarm:dev-x"


def test_unmappable_operations_name_themselves() -> None:
    odd = map_request(_view("PATCH", "/b/k"))
    assert not odd.mapped and "PATCH object" in odd.why_unmapped
    vague = map_request(_view("POST", "/", service="sqs", body=b"", X_Amz_Target="AmazonSQS.Purge"))
    assert not vague.mapped and "sqs:Purge" in vague.why_unmapped
    vending = map_request(_view("POST", "/", service="sts", body=b"Action=AssumeRole&RoleArn=x"))
    assert not vending.mapped and "sts:AssumeRole" in vending.why_unmapped
