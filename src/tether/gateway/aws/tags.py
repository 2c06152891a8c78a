"""Resource tags for policies, read with tether's own credential and cached briefly.

S3 buckets (objects inherit their bucket's), IAM roles and users, EC2 resources,
CloudWatch alarms and any resource ARN the Resource Groups Tagging API knows. A resource
that does not exist (yet) or has no tags reads as no tags; a lookup that fails otherwise
raises, and the door refuses the call (fail closed).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from tether.gateway.aws.operations import TagRef

__all__ = ["TAG_TTL_SECONDS", "TagLookup", "TagLookupFailed"]

TAG_TTL_SECONDS = 60.0
_ABSENT = frozenset(
    {
        "NoSuchBucket", "NoSuchTagSet", "NoSuchTagSetError", "NoSuchEntity",
        "InvalidSnapshot.NotFound", "InvalidInstanceID.NotFound", "InvalidVolume.NotFound",
        "ResourceNotFound", "ResourceNotFoundException", "InvalidID", "404",
    }
)  # fmt: skip

ClientFactory = Callable[[str], Any]
"""``service name -> botocore client`` with the project's credential."""


class TagLookupFailed(Exception):
    pass


def _pairs(items: list[dict[str, Any]] | None) -> dict[str, str]:
    return {str(t.get("Key", "")): str(t.get("Value", "")) for t in items or []}


def _fetch(client: ClientFactory, ref: TagRef) -> dict[str, str]:
    if ref.kind == "s3-bucket":
        return _pairs(client("s3").get_bucket_tagging(Bucket=ref.ident).get("TagSet"))
    if ref.kind == "iam-role":
        return _pairs(client("iam").list_role_tags(RoleName=ref.ident).get("Tags"))
    if ref.kind == "iam-user":
        return _pairs(client("iam").list_user_tags(UserName=ref.ident).get("Tags"))
    if ref.kind == "ec2":
        answer = client("ec2").describe_tags(
            Filters=[{"Name": "resource-id", "Values": [ref.ident]}]
        )
        return _pairs(answer.get("Tags"))
    if ref.kind == "cloudwatch":
        return _pairs(
            client("cloudwatch").list_tags_for_resource(ResourceARN=ref.ident).get("Tags")
        )
    answer = client("resourcegroupstaggingapi").get_resources(ResourceARNList=[ref.ident])
    mappings = answer.get("ResourceTagMappingList") or [{}]
    return _pairs(mappings[0].get("Tags"))


class TagLookup:
    def __init__(self, ttl_seconds: float = TAG_TTL_SECONDS) -> None:
        self._ttl = ttl_seconds
        self._cache: dict[tuple[str, str, TagRef], tuple[float, dict[str, str]]] = {}

    async def tags(
        self, project_id: str, client: ClientFactory, ref: TagRef, region: str
    ) -> dict[str, str]:
        """The tags of ``ref`` as ``client`` (in ``region``, the call's) reads them."""
        key = (project_id, region, ref)
        cached = self._cache.get(key)
        now = time.monotonic()
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        try:
            found = await asyncio.to_thread(_fetch, client, ref)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code not in _ABSENT:
                raise TagLookupFailed(
                    f"the tags of {ref.ident} could not be read ({code})"
                ) from None
            found = {}
        except BotoCoreError as exc:
            raise TagLookupFailed(f"the tags of {ref.ident} could not be read ({exc})") from None
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (now, found)
        return found

    def forget(self, project_id: str) -> None:
        for key in [k for k in self._cache if k[0] == project_id]:
            del self._cache[key]
