"""An AWS request as ``service:Operation`` actions on resource ARNs.

S3 (path-style and virtual-hosted, bucket and object operations from method, path and
sub-resource, each as the IAM action AWS authorizes it as; ``DeleteObjects`` gives one
action per key listed in its body), the query protocol (``Action=`` in the query or form
body: IAM, EC2, STS, CloudWatch …), the JSON protocol (``X-Amz-Target``: DynamoDB,
CloudWatch Logs …) and Smithy RPC v2 CBOR (CloudWatch in current SDKs). An operation
tether cannot tell (an S3 sub-resource it does not know), whose resource it cannot tell,
or that hands out credentials is returned ``mapped=False`` with a reason naming it; the
pipeline then denies it.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote
from xml.etree import ElementTree

from botocore.parsers import RpcV2CBORParser

__all__ = [
    "AwsCall",
    "AwsRequestView",
    "AwsTarget",
    "TagRef",
    "Unmappable",
    "UnreadableRequest",
    "map_request",
    "map_request_or_why",
    "policy_service",
    "protocol_of",
]

MAX_DELETE_KEYS = 1000
_POLICY_SERVICE = {"monitoring": "cloudwatch", "email": "ses", "execute-api": "apigateway"}
_CREDENTIAL_VENDING = frozenset(
    (service, operation.lower())
    for service, operations in {
        # AWS keys and session tokens
        "sts": (
            "AssumeRole", "AssumeRoleWithSAML", "AssumeRoleWithWebIdentity", "AssumeRoot",
            "GetSessionToken", "GetFederationToken", "GetScopedCredentials",
            "GetDelegatedAccessToken", "GetWebIdentityToken",
        ),
        "iam": (
            "CreateAccessKey", "CreateLoginProfile", "UpdateLoginProfile",
            "CreateServiceSpecificCredential", "ResetServiceSpecificCredential",
            "UploadSSHPublicKey", "UploadSigningCertificate",
        ),
        "cognito-identity": (
            "GetCredentialsForIdentity", "GetOpenIdToken", "GetOpenIdTokenForDeveloperIdentity",
        ),
        "ssm": ("GetAccessToken",),
        "elasticmapreduce": ("GetClusterSessionCredentials",),
        "codepipeline": (
            "PollForJobs", "GetJobDetails", "PollForThirdPartyJobs", "GetThirdPartyJobDetails",
        ),
        "gamelift": (
            "RequestUploadCredentials", "GetComputeAccess", "GetComputeAuthToken",
            "GetInstanceAccess",
        ),
        "cloudwatch": ("GetSpaceCredentialsForOrganization", "GetSpaceDataAccess"),
        "lightsail": (
            "CreateBucketAccessKey", "CreateContainerServiceRegistryLogin",
            "GetInstanceAccessDetails",
        ),
        # registry, repository and database logins
        "ecr": ("GetAuthorizationToken",),
        "ecr-public": ("GetAuthorizationToken",),
        "codeartifact": ("GetAuthorizationToken",),
        "redshift": (
            "GetClusterCredentials", "GetClusterCredentialsWithIAM", "GetIdentityCenterAuthToken",
        ),
        "redshift-serverless": ("GetCredentials", "GetIdentityCenterAuthToken"),
        "license-manager": ("CreateToken", "GetAccessToken"),
        # REST-style APIs, refused before this for their path; listed all the same
        "sso": ("GetRoleCredentials",),
        "awsssoportal": ("GetRoleCredentials",),
        "sso-oauth": ("CreateToken", "CreateTokenWithIAM"),
        "sso-oidc": ("CreateToken", "CreateTokenWithIAM"),
        "lakeformation": (
            "GetTemporaryGlueTableCredentials", "GetTemporaryGluePartitionCredentials",
            "GetTemporaryDataLocationCredentials", "GetTemporaryGlueFunctionCredentials",
        ),
        "datazone": ("GetEnvironmentCredentials",),
        "emr-containers": ("GetManagedEndpointSessionCredentials",),
        "connect": ("GetFederationToken",),
        "account-access": ("GetRoleCredentials",),
    }.items()
    for operation in operations
)  # fmt: skip
"""(policy service, operation lower-cased) that hand the agent a credential: an answer
holding AWS keys, a session or identity token, a registry, repository or database login;
or one the agent sets itself (a console password, an SSH key, a signing certificate).
Relayed, the agent could call AWS around tether. Keyed by service: another service's
operation of the same name is decided as any other."""


class UnreadableRequest(Exception):
    """The request is not valid for its protocol (bad XML, bad JSON): a 400."""


@dataclass(frozen=True, slots=True)
class TagRef:
    """Where a resource's tags are read from (``kind``: s3-bucket, iam-role, iam-user,
    ec2, cloudwatch, resource-arn)."""

    kind: str
    ident: str


@dataclass(frozen=True, slots=True)
class AwsTarget:
    action: str
    resource: str
    tags_from: TagRef | None = None
    destructive: bool = False
    """The operation deletes, though AWS authorizes it as a ``Put`` (``DeleteBucketPolicy``
    is a deletion by its name; ``DeleteBucketReplication`` is
    ``s3:PutReplicationConfiguration``): it waits for an approval as any deletion."""


@dataclass(slots=True)
class AwsCall:
    service: str
    """The credential scope's service (``monitoring``); actions use the policy prefix."""
    protocol: str
    """``s3``, ``query``, ``ec2``, ``json`` or ``cbor``: how errors must be answered."""
    operation: str
    targets: list[AwsTarget] = field(default_factory=list)
    mapped: bool = True
    why_unmapped: str = ""
    bucket: str | None = None
    key: str | None = None
    virtual_host: bool = False
    """S3: the bucket is the Host's (``bucket.s3.…``), not the path's first segment; the
    call is forwarded path-style with the bucket put in front of the path."""


@dataclass(frozen=True, slots=True)
class AwsRequestView:
    method: str
    path: str
    """Percent-encoded, without the door's prefix (``/bucket/key``)."""
    host: str
    query: list[tuple[str, str]]
    headers: Mapping[str, str]
    body: bytes | None
    """Read only when the mapping needs it (non-S3, ``DeleteObjects``)."""
    service: str
    region: str
    account: str


def policy_service(scope_service: str) -> str:
    return _POLICY_SERVICE.get(scope_service, scope_service)


def protocol_of(service: str, headers: Mapping[str, str], path: str) -> str:
    if service == "s3":
        return "s3"
    if headers.get("X-Amz-Target"):
        return "json"
    if "/operation/" in path and (
        headers.get("smithy-protocol")
        or headers.get("Content-Type", "").startswith("application/cbor")
    ):
        return "cbor"
    return "ec2" if service == "ec2" else "query"


# ---------------------------------------------------------------- S3

_VERSIONED_ACTION = {
    "GetObject": "GetObjectVersion",
    "DeleteObject": "DeleteObjectVersion",
    "GetObjectTagging": "GetObjectVersionTagging",
    "PutObjectTagging": "PutObjectVersionTagging",
    "DeleteObjectTagging": "DeleteObjectVersionTagging",
    "GetObjectAcl": "GetObjectVersionAcl",
    "PutObjectAcl": "PutObjectVersionAcl",
    "GetObjectAttributes": "GetObjectVersionAttributes",
    "GetObjectTorrent": "GetObjectVersionTorrent",
}
"""IAM action → its name on one version of an object (``?versionId=``, ``<VersionId>``):
deleting a version destroys it for good, where deleting the key leaves a marker."""

_S3Op = tuple[str, str]
"""An S3 API operation and the IAM action AWS authorizes it as, without ``s3:`` (the
names of "Actions, resources, and condition keys for Amazon S3": what policies use)."""

_BUCKET_SUBRESOURCES: dict[str, dict[str, _S3Op]] = {
    "abac": {
        "GET": ("GetBucketAbac", "GetBucketABAC"),
        "PUT": ("PutBucketAbac", "PutBucketABAC"),
    },
    "accelerate": {
        "GET": ("GetBucketAccelerateConfiguration", "GetAccelerateConfiguration"),
        "PUT": ("PutBucketAccelerateConfiguration", "PutAccelerateConfiguration"),
    },
    "acl": {"GET": ("GetBucketAcl", "GetBucketAcl"), "PUT": ("PutBucketAcl", "PutBucketAcl")},
    "analytics": {
        "GET": ("GetBucketAnalyticsConfiguration", "GetAnalyticsConfiguration"),
        "PUT": ("PutBucketAnalyticsConfiguration", "PutAnalyticsConfiguration"),
        "DELETE": ("DeleteBucketAnalyticsConfiguration", "PutAnalyticsConfiguration"),
    },
    "cors": {
        "GET": ("GetBucketCors", "GetBucketCORS"),
        "PUT": ("PutBucketCors", "PutBucketCORS"),
        "DELETE": ("DeleteBucketCors", "PutBucketCORS"),
    },
    "delete": {"POST": ("DeleteObjects", "DeleteObject")},
    "encryption": {
        "GET": ("GetBucketEncryption", "GetEncryptionConfiguration"),
        "PUT": ("PutBucketEncryption", "PutEncryptionConfiguration"),
        "DELETE": ("DeleteBucketEncryption", "PutEncryptionConfiguration"),
    },
    "intelligent-tiering": {
        "GET": ("GetBucketIntelligentTieringConfiguration", "GetIntelligentTieringConfiguration"),
        "PUT": ("PutBucketIntelligentTieringConfiguration", "PutIntelligentTieringConfiguration"),
        "DELETE": (
            "DeleteBucketIntelligentTieringConfiguration",
            "PutIntelligentTieringConfiguration",
        ),
    },
    "inventory": {
        "GET": ("GetBucketInventoryConfiguration", "GetInventoryConfiguration"),
        "PUT": ("PutBucketInventoryConfiguration", "PutInventoryConfiguration"),
        "DELETE": ("DeleteBucketInventoryConfiguration", "PutInventoryConfiguration"),
    },
    "lifecycle": {
        "GET": ("GetBucketLifecycleConfiguration", "GetLifecycleConfiguration"),
        "PUT": ("PutBucketLifecycleConfiguration", "PutLifecycleConfiguration"),
        "DELETE": ("DeleteBucketLifecycle", "PutLifecycleConfiguration"),
    },
    "location": {"GET": ("GetBucketLocation", "GetBucketLocation")},
    "logging": {
        "GET": ("GetBucketLogging", "GetBucketLogging"),
        "PUT": ("PutBucketLogging", "PutBucketLogging"),
    },
    "metadataConfiguration": {
        "POST": ("CreateBucketMetadataConfiguration", "CreateBucketMetadataTableConfiguration"),
        "GET": ("GetBucketMetadataConfiguration", "GetBucketMetadataTableConfiguration"),
        "DELETE": ("DeleteBucketMetadataConfiguration", "DeleteBucketMetadataTableConfiguration"),
    },
    "metadataTable": {
        "POST": ("CreateBucketMetadataTableConfiguration",) * 2,
        "GET": ("GetBucketMetadataTableConfiguration",) * 2,
        "DELETE": ("DeleteBucketMetadataTableConfiguration",) * 2,
    },
    "metadataAnnotationTable": {"PUT": ("UpdateBucketMetadataAnnotationTableConfiguration",) * 2},
    "metadataInventoryTable": {"PUT": ("UpdateBucketMetadataInventoryTableConfiguration",) * 2},
    "metadataJournalTable": {"PUT": ("UpdateBucketMetadataJournalTableConfiguration",) * 2},
    "metrics": {
        "GET": ("GetBucketMetricsConfiguration", "GetMetricsConfiguration"),
        "PUT": ("PutBucketMetricsConfiguration", "PutMetricsConfiguration"),
        "DELETE": ("DeleteBucketMetricsConfiguration", "PutMetricsConfiguration"),
    },
    "notification": {
        "GET": ("GetBucketNotificationConfiguration", "GetBucketNotification"),
        "PUT": ("PutBucketNotificationConfiguration", "PutBucketNotification"),
    },
    "object-lock": {
        "GET": ("GetObjectLockConfiguration", "GetBucketObjectLockConfiguration"),
        "PUT": ("PutObjectLockConfiguration", "PutBucketObjectLockConfiguration"),
    },
    "ownershipControls": {
        "GET": ("GetBucketOwnershipControls", "GetBucketOwnershipControls"),
        "PUT": ("PutBucketOwnershipControls", "PutBucketOwnershipControls"),
        "DELETE": ("DeleteBucketOwnershipControls", "PutBucketOwnershipControls"),
    },
    "policy": {
        "GET": ("GetBucketPolicy", "GetBucketPolicy"),
        "PUT": ("PutBucketPolicy", "PutBucketPolicy"),
        "DELETE": ("DeleteBucketPolicy", "DeleteBucketPolicy"),
    },
    "policyStatus": {"GET": ("GetBucketPolicyStatus", "GetBucketPolicyStatus")},
    "publicAccessBlock": {
        "GET": ("GetPublicAccessBlock", "GetBucketPublicAccessBlock"),
        "PUT": ("PutPublicAccessBlock", "PutBucketPublicAccessBlock"),
        "DELETE": ("DeletePublicAccessBlock", "PutBucketPublicAccessBlock"),
    },
    "replication": {
        "GET": ("GetBucketReplication", "GetReplicationConfiguration"),
        "PUT": ("PutBucketReplication", "PutReplicationConfiguration"),
        "DELETE": ("DeleteBucketReplication", "PutReplicationConfiguration"),
    },
    "requestPayment": {
        "GET": ("GetBucketRequestPayment", "GetBucketRequestPayment"),
        "PUT": ("PutBucketRequestPayment", "PutBucketRequestPayment"),
    },
    "tagging": {
        "GET": ("GetBucketTagging", "GetBucketTagging"),
        "PUT": ("PutBucketTagging", "PutBucketTagging"),
        "DELETE": ("DeleteBucketTagging", "PutBucketTagging"),
    },
    "uploads": {"GET": ("ListMultipartUploads", "ListBucketMultipartUploads")},
    "versioning": {
        "GET": ("GetBucketVersioning", "GetBucketVersioning"),
        "PUT": ("PutBucketVersioning", "PutBucketVersioning"),
    },
    "versions": {"GET": ("ListObjectVersions", "ListBucketVersions")},
    "website": {
        "GET": ("GetBucketWebsite", "GetBucketWebsite"),
        "PUT": ("PutBucketWebsite", "PutBucketWebsite"),
        "DELETE": ("DeleteBucketWebsite", "DeleteBucketWebsite"),
    },
}
"""Every bucket sub-resource of the S3 API, by method. A deletion AWS authorizes as a
``Put`` (``DeleteBucketEncryption`` is ``s3:PutEncryptionConfiguration``) is decided as
that action, and still waits for an approval as a deletion (``AwsTarget.destructive``)."""
_LISTED_WITHOUT_ID = {
    "analytics": "ListBucketAnalyticsConfigurations",
    "intelligent-tiering": "ListBucketIntelligentTieringConfigurations",
    "inventory": "ListBucketInventoryConfigurations",
    "metrics": "ListBucketMetricsConfigurations",
}
"""A GET of these without ``?id=`` lists the configurations (authorized as the Get)."""
_OBJECT_SUBRESOURCES: dict[str, dict[str, _S3Op]] = {
    "acl": {"GET": ("GetObjectAcl", "GetObjectAcl"), "PUT": ("PutObjectAcl", "PutObjectAcl")},
    "annotation": {
        "GET": ("GetObjectAnnotation", "GetObjectAnnotation"),
        "PUT": ("PutObjectAnnotation", "PutObjectAnnotation"),
        "DELETE": ("DeleteObjectAnnotation", "DeleteObjectAnnotation"),
    },
    "attributes": {"GET": ("GetObjectAttributes", "GetObjectAttributes")},
    "encryption": {"PUT": ("UpdateObjectEncryption", "UpdateObjectEncryption")},
    "legal-hold": {
        "GET": ("GetObjectLegalHold", "GetObjectLegalHold"),
        "PUT": ("PutObjectLegalHold", "PutObjectLegalHold"),
    },
    "restore": {"POST": ("RestoreObject", "RestoreObject")},
    "retention": {
        "GET": ("GetObjectRetention", "GetObjectRetention"),
        "PUT": ("PutObjectRetention", "PutObjectRetention"),
    },
    "select": {"POST": ("SelectObjectContent", "GetObject")},
    "tagging": {
        "GET": ("GetObjectTagging", "GetObjectTagging"),
        "PUT": ("PutObjectTagging", "PutObjectTagging"),
        "DELETE": ("DeleteObjectTagging", "DeleteObjectTagging"),
    },
    "torrent": {"GET": ("GetObjectTorrent", "GetObjectTorrent")},
    "uploads": {"POST": ("CreateMultipartUpload", "PutObject")},
}
"""Every object sub-resource of the S3 API, by method (``GetObjectAttributes`` needs
``s3:GetObject`` too: ``_map_s3`` adds it)."""
_REFUSED_SUBRESOURCES = {
    "session": "CreateSession (?session) hands out S3 Express session credentials, which "
    "would let the agent call AWS around tether; the broker does not relay it",
}
_S3_PARAMETERS = frozenset(
    {
        # listing buckets, objects, versions, uploads, parts, annotations
        "prefix", "delimiter", "marker", "max-keys", "list-type", "continuation-token",
        "start-after", "encoding-type", "fetch-owner", "key-marker", "version-id-marker",
        "upload-id-marker", "max-uploads", "max-parts", "part-number-marker",
        "bucket-region", "max-buckets", "max-directory-buckets", "annotation-prefix",
        "max-annotation-results",
        # which version, part, upload, configuration, annotation; SelectObjectContent's
        "versionId", "partNumber", "uploadId", "id", "annotationName", "select-type",
        # how a GET's answer is labelled
        "response-cache-control", "response-content-disposition", "response-content-encoding",
        "response-content-language", "response-content-type", "response-expires",
        # the operation's name, added by some SDKs (Go, JavaScript, Rust, …)
        "x-id",
        # a presigned URL's signature
        "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
        "X-Amz-SignedHeaders", "X-Amz-Signature", "X-Amz-Security-Token",
        "AWSAccessKeyId", "Signature", "Expires",
    }
)  # fmt: skip
"""Query parameters that are an operation's arguments, not a sub-resource naming the
operation: the query-string members of every S3 operation's input (botocore's model)."""


def _is_s3_parameter(name: str) -> bool:
    """An argument, or a header a presigning SDK hoisted into the query (``x-amz-acl``,
    ``x-amz-checksum-crc32``); not ``x-amz-copy-source``, which would make a put a copy
    that reads another object."""
    lowered = name.lower()
    return name in _S3_PARAMETERS or (
        lowered.startswith("x-amz-") and not lowered.startswith("x-amz-copy-source")
    )


_VIRTUAL_HOST = re.compile(r"^(?P<bucket>[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])\.(?:localhost|s3[.\-])")


def _s3_bucket_and_key(view: AwsRequestView) -> tuple[str | None, str | None, bool]:
    """The bucket, the key, and whether the bucket came from the Host (virtual-hosted)."""
    host = view.host.rsplit(":", 1)[0] if not view.host.startswith("[") else view.host
    virtual = _VIRTUAL_HOST.match(host.lower())
    path = view.path.lstrip("/")
    if virtual:
        return virtual["bucket"], unquote(path) or None, True
    if not path:
        return None, None, False
    bucket, _, key = path.partition("/")
    return unquote(bucket), unquote(key) or None, False


def _s3_arn(bucket: str, key: str | None = None) -> str:
    return f"arn:aws:s3:::{bucket}" + (f"/{key}" if key is not None else "")


def _shown(name: str) -> str:
    return name if len(name) <= 64 else name[:61] + "..."


def _s3_operation(
    method: str, query: Mapping[str, str], headers: Mapping[str, str], has_key: bool
) -> _S3Op | str:
    """The operation and the IAM action it is authorized as, or why tether cannot tell
    them: a sub-resource it does not know (never guessed as the plain bucket or object
    call: ``PUT ?replication`` is not ``CreateBucket``), two of them, or a method S3 has
    no operation for."""
    level = "an object" if has_key else "a bucket"
    subs = sorted(name for name in query if not _is_s3_parameter(name))
    if len(subs) > 1:
        named = ", ".join(f"?{_shown(s)}" for s in subs[:5])
        return f"it names {len(subs)} sub-resources ({named}), where an operation names one"
    if subs:
        sub = subs[0]
        if sub in _REFUSED_SUBRESOURCES:
            return _REFUSED_SUBRESOURCES[sub]
        by_method = (_OBJECT_SUBRESOURCES if has_key else _BUCKET_SUBRESOURCES).get(sub)
        if by_method is None:
            return f"?{_shown(sub)} is not a sub-resource of {level} that tether knows"
        if method not in by_method:
            return f"S3 has no {method} operation on the ?{sub} of {level}"
        if "uploadId" in query:
            return f"?{sub} with ?uploadId could be read as either operation"
        operation, action = by_method[method]
        if method == "GET" and sub in _LISTED_WITHOUT_ID and "id" not in query:
            operation = _LISTED_WITHOUT_ID[sub]
        elif (sub, method) == ("annotation", "GET") and "annotationName" not in query:
            operation = action = "ListObjectAnnotations"
        return operation, action
    if not has_key:
        if method == "GET":
            listed = "ListObjectsV2" if query.get("list-type") == "2" else "ListObjects"
            return listed, "ListBucket"
        plain = {
            "PUT": ("CreateBucket", "CreateBucket"),
            "DELETE": ("DeleteBucket", "DeleteBucket"),
            "HEAD": ("HeadBucket", "ListBucket"),
        }
        return plain.get(method) or f"S3 has no {method} operation on a bucket"
    if method == "POST":
        if "uploadId" in query:
            return "CompleteMultipartUpload", "PutObject"
        return "S3 has no POST operation on an object without a sub-resource or ?uploadId"
    if method == "PUT" and "partNumber" in query and "uploadId" in query:
        copy = "x-amz-copy-source" in headers
        return ("UploadPartCopy" if copy else "UploadPart"), "PutObject"
    if method == "DELETE" and "uploadId" in query:
        return "AbortMultipartUpload", "AbortMultipartUpload"
    if method == "GET" and "uploadId" in query:
        return "ListParts", "ListMultipartUploadParts"
    if method == "PUT":
        return ("CopyObject" if "x-amz-copy-source" in headers else "PutObject"), "PutObject"
    plain = {
        "GET": ("GetObject", "GetObject"),
        "HEAD": ("HeadObject", "GetObject"),
        "DELETE": ("DeleteObject", "DeleteObject"),
    }
    return plain.get(method) or f"S3 has no {method} operation on an object"


def _deleted_keys(body: bytes | None) -> list[tuple[str, bool]]:
    """Each key listed, and whether one version of it is named (``<VersionId>``)."""
    if not body:
        raise UnreadableRequest("DeleteObjects needs a body listing the keys")
    try:
        root = ElementTree.fromstring(body)  # expat refuses entity-expansion bombs
    except ElementTree.ParseError as exc:
        raise UnreadableRequest(f"the DeleteObjects body is not XML: {exc}") from None
    keys = []
    for element in root.iter():
        if _local_name(element) != "Object":
            continue
        named = {_local_name(child): child.text or "" for child in element}
        if "Key" in named:
            keys.append((named["Key"], "VersionId" in named))
    if not keys or len(keys) > MAX_DELETE_KEYS:
        raise UnreadableRequest(f"DeleteObjects lists {len(keys)} keys (1 to 1000 allowed)")
    return keys


def _local_name(element: ElementTree.Element) -> str:
    return str(element.tag).rsplit("}", 1)[-1]


def _map_s3(view: AwsRequestView) -> AwsCall:
    bucket, key, virtual_host = _s3_bucket_and_key(view)
    query = dict(view.query)
    if bucket is None:
        if view.method == "GET":
            return AwsCall(
                "s3", "s3", "ListBuckets", [AwsTarget("s3:ListAllMyBuckets", "arn:aws:s3:::*")]
            )
        return AwsCall(
            "s3",
            "s3",
            f"{view.method} /",
            mapped=False,
            why_unmapped=f"tether cannot map S3 request {view.method} / to an operation",
        )
    found = _s3_operation(view.method, query, view.headers, key is not None)
    if isinstance(found, str):
        params = ",".join(_shown(name) for name in sorted(query)[:10]) or "-"
        described = f"{view.method} {'object' if key else 'bucket'} (query: {params})"
        return AwsCall(
            "s3",
            "s3",
            described,
            mapped=False,
            bucket=bucket,
            key=key,
            virtual_host=virtual_host,
            why_unmapped=f"tether cannot map S3 request {described} to an operation: {found}",
        )
    operation, action = found
    if "versionId" in query:
        action = _VERSIONED_ACTION.get(action, action)
    tags = TagRef("s3-bucket", bucket)
    call = AwsCall("s3", "s3", operation, bucket=bucket, key=key, virtual_host=virtual_host)
    if operation == "DeleteObjects":
        call.targets = [
            AwsTarget(
                "s3:" + (_VERSIONED_ACTION.get(action, action) if versioned else action),
                _s3_arn(bucket, k),
                tags,
            )
            for k, versioned in _deleted_keys(view.body)
        ]
        return call
    # a deletion AWS authorizes as a Put (DeleteBucketReplication: s3:PutReplication…)
    destructive = operation.startswith("Delete") and not action.startswith("Delete")
    call.targets = [AwsTarget("s3:" + action, _s3_arn(bucket, key), tags, destructive)]
    if operation == "GetObjectAttributes":
        read = "GetObjectVersion" if "versionId" in query else "GetObject"
        call.targets.append(AwsTarget(f"s3:{read}", _s3_arn(bucket, key), tags))
    source = view.headers.get("x-amz-copy-source")
    if operation in ("CopyObject", "UploadPartCopy") and source:
        src_bucket, _, src_key = unquote(source.split("?", 1)[0]).lstrip("/").partition("/")
        call.targets.append(
            AwsTarget("s3:GetObject", _s3_arn(src_bucket, src_key), TagRef("s3-bucket", src_bucket))
        )
    return call


# ---------------------------------------------------------------- query / JSON / CBOR

_EC2_KINDS = {
    "i": "instance",
    "snap": "snapshot",
    "vol": "volume",
    "ami": "image",
    "sg": "security-group",
    "vpc": "vpc",
    "subnet": "subnet",
    "eni": "network-interface",
    "igw": "internet-gateway",
    "rtb": "route-table",
    "eipalloc": "elastic-ip",
    "lt": "launch-template",
    "key": "key-pair",
}
_IAM_PARAMS = (
    ("RoleName", "role"),
    ("UserName", "user"),
    ("GroupName", "group"),
    ("InstanceProfileName", "instance-profile"),
    ("ServerCertificateName", "server-certificate"),
)
_READ_PREFIXES = ("List", "Describe", "Get", "Head", "Lookup", "Search", "Query", "Scan")


def _values(params: Mapping[str, Any], name: str) -> list[str]:
    """A parameter's values, flat (``Name``) or as a list (``Name.N``, ``Name.member.N``,
    a JSON/CBOR array)."""
    found: list[str] = []
    for key, value in params.items():
        if key == name or re.fullmatch(rf"{re.escape(name)}(\.member)?\.\d+", key):
            if isinstance(value, list):
                found.extend(str(v) for v in value)
            elif isinstance(value, str | int):
                found.append(str(value))
    return found


def _ec2_arn(region: str, account: str, ident: str) -> str:
    kind = _EC2_KINDS.get(ident.split("-", 1)[0], "resource")
    return f"arn:aws:ec2:{region}:{account}:{kind}/{ident}"


def _targets(
    service: str, operation: str, params: Mapping[str, Any], region: str, account: str
) -> list[AwsTarget]:
    prefix = policy_service(service)
    action = f"{prefix}:{operation}"
    arns = [
        v
        for k, v in params.items()
        if isinstance(v, str)
        and v.startswith("arn:")
        and k.lower().endswith(("arn", "arns", "resourcearn"))
    ]
    if service == "iam":
        for param, kind in _IAM_PARAMS:
            names = _values(params, param)
            if names:
                ref = "iam-role" if kind == "role" else ("iam-user" if kind == "user" else None)
                return [
                    AwsTarget(
                        action,
                        f"arn:aws:iam::{account}:{kind}/{n}",
                        TagRef(ref, n) if ref else None,
                    )
                    for n in names
                ]
    elif service == "ec2":
        ids: list[str] = []
        for key in params:
            base = re.sub(r"(\.member)?\.\d+$", "", key)
            if base.endswith("Id") and base not in (
                "ClientToken",
                "DryRun",
                "OwnerId",
                "MaxResults",
            ):
                ids.extend(_values(params, key))
        ids = [i for i in dict.fromkeys(ids) if "-" in i]
        if ids and not operation.startswith("Describe"):
            return [AwsTarget(action, _ec2_arn(region, account, i), TagRef("ec2", i)) for i in ids]
    elif prefix == "cloudwatch":
        names = _values(params, "AlarmNames") or _values(params, "AlarmName")
        if names:
            return [
                AwsTarget(
                    action,
                    f"arn:aws:cloudwatch:{region}:{account}:alarm:{n}",
                    TagRef("cloudwatch", f"arn:aws:cloudwatch:{region}:{account}:alarm:{n}"),
                )
                for n in names
            ]
        dashboards = _values(params, "DashboardNames") or _values(params, "DashboardName")
        if dashboards:
            return [
                AwsTarget(action, f"arn:aws:cloudwatch::{account}:dashboard/{n}")
                for n in dashboards
            ]
    elif service == "dynamodb":
        tables = _values(params, "TableName")
        if tables:
            return [
                AwsTarget(
                    action,
                    f"arn:aws:dynamodb:{region}:{account}:table/{t}",
                    TagRef("resource-arn", f"arn:aws:dynamodb:{region}:{account}:table/{t}"),
                )
                for t in tables
            ]
    elif service == "logs":
        groups = _values(params, "logGroupName")
        if groups:
            return [
                AwsTarget(action, f"arn:aws:logs:{region}:{account}:log-group:{g}") for g in groups
            ]
    if arns:
        return [AwsTarget(action, arn, TagRef("resource-arn", arn)) for arn in arns]
    if operation.startswith(_READ_PREFIXES) or (
        service == "ec2" and operation.startswith("Describe")
    ):
        scope_region = "" if service in ("iam", "sts") else region
        return [AwsTarget(action, f"arn:aws:{prefix}:{scope_region}:{account}:*")]
    for key, value in params.items():
        base = re.sub(r"(\.member)?\.\d+$", "", key)
        if isinstance(value, str) and value and base.endswith(("Name", "Id", "Url")):
            kind = re.sub(r"(Name|Id|Url)$", "", base)
            kind = re.sub(r"(?<!^)(?=[A-Z])", "-", kind).lower() or "resource"
            return [AwsTarget(action, f"arn:aws:{prefix}:{region}:{account}:{kind}/{value}")]
    return []


def _decode_cbor(body: bytes) -> dict[str, Any]:
    if not body:
        return {}
    try:
        parser = RpcV2CBORParser()
        decoded = parser.parse_data_item(parser.get_peekable_stream_from_bytes(body))
    except Exception as exc:
        raise UnreadableRequest(f"the CBOR body cannot be read: {exc}") from None
    if not isinstance(decoded, dict):
        raise UnreadableRequest("the CBOR body is not a map")
    return decoded


def _params(view: AwsRequestView, protocol: str) -> tuple[str, dict[str, Any]]:
    if protocol == "json":
        operation = view.headers.get("X-Amz-Target", "").rsplit(".", 1)[-1]
        try:
            params = json.loads(view.body or b"{}")
        except ValueError as exc:
            raise UnreadableRequest(f"the JSON body cannot be read: {exc}") from None
        if not isinstance(params, dict):
            raise UnreadableRequest("the JSON body is not an object")
        return operation, params
    if protocol == "cbor":
        return view.path.rstrip("/").rsplit("/", 1)[-1], _decode_cbor(view.body or b"")
    pairs = list(view.query)
    content_type = view.headers.get("Content-Type", "").lower()
    if view.body and (not content_type or "x-www-form-urlencoded" in content_type):
        try:
            text = view.body.decode()
        except UnicodeDecodeError:
            raise UnreadableRequest("the form body is not UTF-8") from None
        pairs += parse_qsl(text, keep_blank_values=True)
    params = dict(pairs)
    if len(params) < len(pairs):
        repeated = min(name for name, count in Counter(n for n, _ in pairs).items() if count > 1)
        raise UnreadableRequest(
            f"parameter {repeated!r} is given twice (in the query, the form body or "
            "both): AWS and tether could read different values"
        )
    return str(params.get("Action", "")), params


@dataclass(frozen=True, slots=True)
class Unmappable:
    """Why a body could not be read, as it crosses back from the heavy-work lane."""

    message: str


def map_request_or_why(view: AwsRequestView) -> AwsCall | Unmappable:
    """``map_request`` for the heavy-work lane's worker (a large JSON, XML or CBOR body):
    picklable in and out."""
    try:
        return map_request(view)
    except UnreadableRequest as exc:
        return Unmappable(str(exc))


def map_request(view: AwsRequestView) -> AwsCall:
    """Raises ``UnreadableRequest`` for a body that does not parse."""
    protocol = protocol_of(view.service, view.headers, view.path)
    if protocol == "s3":
        return _map_s3(view)
    if protocol != "cbor" and view.path not in ("", "/"):
        return AwsCall(
            view.service,
            protocol,
            f"{view.method} {view.path[:80]}",
            mapped=False,
            why_unmapped=(
                f"a {view.service} request with a path is a REST-style AWS API, whose "
                "operation is its method and path: tether decides only query, JSON and CBOR "
                "protocol calls (sent to /)"
            ),
        )
    if protocol == "json" and any(name == "Action" for name, _ in view.query):
        return AwsCall(
            view.service,
            protocol,
            "?",
            mapped=False,
            why_unmapped="a request naming its operation twice (X-Amz-Target and Action) "
            "could be run as either",
        )
    operation, params = _params(view, protocol)
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]{0,127}", operation or ""):
        return AwsCall(
            view.service,
            protocol,
            operation or "?",
            mapped=False,
            why_unmapped=f"tether cannot tell which {view.service} operation this request calls",
        )
    call = AwsCall(view.service, protocol, operation)
    if (policy_service(view.service), operation.lower()) in _CREDENTIAL_VENDING:
        call.mapped = False
        call.why_unmapped = (
            f"{policy_service(view.service)}:{operation} hands out credentials, which "
            "would let the agent call AWS around tether; the broker does not relay it"
        )
        return call
    call.targets = _targets(view.service, operation, params, view.region, view.account)
    if not call.targets:
        call.mapped = False
        call.why_unmapped = (
            f"tether cannot tell which resource {policy_service(view.service)}:{operation} acts on"
        )
    return call
