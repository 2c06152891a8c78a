"""Where anchors and incremental exports go: a directory, or an S3 prefix
(``s3://bucket/prefix``) in the operator's own account. On a bucket with S3 Object Lock,
every object is written with a content checksum (which Object Lock requires) and takes the
bucket's default retention; nothing is ever overwritten except the export cursor."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import Any, Protocol

from tether.errors import ConfigError

__all__ = ["Destination", "DirectoryDestination", "S3Destination", "open_destination"]

S3_MISSING = (
    "an s3:// destination needs boto3, an optional extra: install tether[s3] "
    "(`uv sync --extra s3` in a checkout, or `pip install 'tether[s3]'`)"
)


class Destination(Protocol):
    def write(self, name: str, data: bytes) -> None: ...

    def read(self, name: str) -> bytes | None: ...

    def names(self, prefix: str) -> list[str]:
        """Every stored name under ``prefix``, sorted."""
        ...


class DirectoryDestination:
    def __init__(self, root: Path) -> None:
        self._root = root

    def write(self, name: str, data: bytes) -> None:
        """Written to a temporary name and renamed, so a reader never sees half a file."""
        path = self._root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        partial.write_bytes(data)
        os.replace(partial, path)

    def read(self, name: str) -> bytes | None:
        path = self._root / name
        return path.read_bytes() if path.is_file() else None

    def names(self, prefix: str) -> list[str]:
        base = self._root / prefix
        if not base.is_dir():
            return []
        return sorted(
            str(p.relative_to(self._root))
            for p in base.rglob("*")
            if p.is_file() and not p.name.endswith(".partial")
        )


class S3Destination:
    def __init__(self, client: Any, bucket: str, prefix: str) -> None:
        self._s3 = client
        self._bucket = bucket
        self._prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.object_lock = self._object_lock()

    def _object_lock(self) -> bool:
        try:
            found = self._s3.get_object_lock_configuration(Bucket=self._bucket)
        except self._s3.exceptions.ClientError:
            return False
        config = found.get("ObjectLockConfiguration", {})
        return bool(config.get("ObjectLockEnabled") == "Enabled")

    def write(self, name: str, data: bytes) -> None:
        extra: dict[str, Any] = {}
        if self.object_lock:
            extra["ContentMD5"] = base64.b64encode(hashlib.md5(data).digest()).decode()
        self._s3.put_object(Bucket=self._bucket, Key=self._prefix + name, Body=data, **extra)

    def read(self, name: str) -> bytes | None:
        try:
            answer = self._s3.get_object(Bucket=self._bucket, Key=self._prefix + name)
        except self._s3.exceptions.NoSuchKey:
            return None
        body: bytes = answer["Body"].read()
        return body

    def names(self, prefix: str) -> list[str]:
        found: list[str] = []
        pages = self._s3.get_paginator("list_objects_v2").paginate(
            Bucket=self._bucket, Prefix=self._prefix + prefix
        )
        for page in pages:
            found += [item["Key"][len(self._prefix) :] for item in page.get("Contents", [])]
        return sorted(found)


def open_destination(target: str) -> Destination:
    """``s3://bucket/prefix`` (credentials from the usual AWS chain, ``AWS_ENDPOINT_URL``
    for S3-compatible stores) or a directory path."""
    if not target.startswith("s3://"):
        return DirectoryDestination(Path(target).expanduser())
    bucket, _, prefix = target.removeprefix("s3://").partition("/")
    if not bucket:
        raise ConfigError(f"{target!r} names no bucket; use s3://BUCKET/PREFIX")
    try:
        import boto3
    except ImportError:
        raise ConfigError(S3_MISSING) from None
    return S3Destination(boto3.client("s3"), bucket, prefix)
