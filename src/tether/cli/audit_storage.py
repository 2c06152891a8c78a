"""Where ``tether audit export`` writes and ``verify --file`` reads: a local file, or an S3
object (``s3://bucket/key``) in the user's own account, written with the user's AWS
credentials (the usual chain: environment, profile, role; ``AWS_ENDPOINT_URL`` for
S3-compatible stores). Tether's server never holds those credentials."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from tether.cli.client import CliError

__all__ = ["ANCHOR_METADATA", "ExportWriter", "export_to", "read_export"]

ANCHOR_METADATA = "tether-anchor"


class ExportWriter:
    def __init__(self, file: IO[bytes]) -> None:
        self._file = file
        self.count = 0
        self.last: bytes | None = None

    def write(self, line: bytes) -> None:
        self._file.write(line + b"\n")
        self.count += 1
        self.last = line


def _s3_location(url: str) -> tuple[str, str]:
    bucket, _, key = url.removeprefix("s3://").partition("/")
    if not bucket or not key:
        raise CliError(f"{url!r} is not an S3 object URL; use s3://BUCKET/KEY")
    return bucket, key


S3_MISSING = (
    "s3:// needs boto3, an optional extra: install tether[s3] "
    "(`uv sync --extra s3` in a checkout, or `pip install 'tether[s3]'`)"
)


def _boto3() -> Any:
    """boto3 is only for this feature, so it is an extra; without it, say how to get it."""
    try:
        import boto3
    except ImportError:
        raise CliError(S3_MISSING) from None
    return boto3


@contextlib.contextmanager
def _s3_client() -> Iterator[Any]:
    client = _boto3().client("s3")
    try:
        yield client
    finally:
        client.close()


@contextlib.contextmanager
def _s3_errors(url: str) -> Iterator[None]:
    _boto3()
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (BotoCoreError, ClientError) as exc:
        raise CliError(f"cannot use {url}: {exc}") from None


@contextlib.contextmanager
def _local_file(path: str, mode: str) -> Iterator[IO[bytes]]:
    """A local file; failing to open, read or write it is a CLI error, not a traceback."""
    try:
        with Path(path).open(mode) as handle:
            yield handle
    except OSError as exc:
        verb = "read" if "r" in mode else "write"
        raise CliError(f"cannot {verb} {path}: {exc.strerror or exc}") from None


@contextlib.contextmanager
def export_to(target: str, anchor_of: Any) -> Iterator[ExportWriter]:
    """A writer for the export; S3 objects are uploaded when the block succeeds, with
    ``anchor_of(writer)`` (``SEQ:HASH`` or None) as object metadata."""
    if not target.startswith("s3://"):
        with _local_file(target, "wb") as handle:
            yield ExportWriter(handle)
        return
    bucket, key = _s3_location(target)
    with tempfile.TemporaryFile() as spool:
        writer = ExportWriter(spool)
        yield writer
        spool.seek(0)
        anchor = anchor_of(writer)
        extra = {"Metadata": {ANCHOR_METADATA: anchor}} if anchor else {}
        with _s3_errors(target), _s3_client() as s3:
            s3.upload_fileobj(spool, bucket, key, ExtraArgs=extra)


@contextlib.contextmanager
def read_export(source: str) -> Iterator[Iterator[bytes]]:
    """The lines of an export, local or on S3."""
    if not source.startswith("s3://"):
        with _local_file(source, "rb") as handle:
            yield iter(handle)
        return
    bucket, key = _s3_location(source)
    with _s3_client() as s3:
        with _s3_errors(source):
            body = s3.get_object(Bucket=bucket, Key=key)["Body"]
        try:
            yield body.iter_lines()
        finally:
            body.close()
