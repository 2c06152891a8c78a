"""Incremental exports to a destination (a directory or ``s3://bucket/prefix``): the
events after the remembered cursor, gzipped JSON lines partitioned by date
(``events/YYYY/MM/DD/FIRST-LAST.jsonl.gz``), then the cursor moved. Run it as often as
you like (cron, a systemd timer): each run adds what is new."""

from __future__ import annotations

import contextlib
import gzip
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from tether.audit.destinations import Destination, open_destination
from tether.cli.client import CliError
from tether.errors import TetherError

__all__ = ["CURSOR", "ArchiveRun", "archive_events", "archived_lines", "destination", "read_cursor"]

CURSOR = "export-cursor.json"
EVENTS = "events/"
FILE_EVENTS = 100_000


def destination(target: str) -> Destination:
    try:
        return open_destination(target)
    except TetherError as exc:
        raise CliError(exc.message) from None


@contextlib.contextmanager
def _reaching(target: str) -> Iterator[None]:
    """The destination's own failures (S3 refusals, a full disk) as CLI errors."""
    try:
        yield
    except OSError as exc:
        raise CliError(f"cannot use {target}: {exc}") from None
    except Exception as exc:
        if type(exc).__module__.startswith("botocore"):
            raise CliError(f"cannot use {target}: {exc}") from None
        raise


def read_cursor(dest: Destination) -> tuple[int, str] | None:
    raw = dest.read(CURSOR)
    if raw is None:
        return None
    found = orjson.loads(raw)
    return int(found["seq"]), str(found["hash"])


@dataclass
class ArchiveRun:
    events: int = 0
    files: int = 0
    last: tuple[int, str] | None = None


def _day(line: bytes) -> str:
    ts = orjson.loads(line)["ts"]
    return datetime.fromtimestamp(ts / 1000, UTC).strftime("%Y/%m/%d")


def archive_events(target: str, lines: Iterator[bytes], dest: Destination) -> ArchiveRun:
    """Write ``lines`` (chain order, after the cursor) in per-day gzip files; the cursor
    moves only after the files holding its events are written."""
    run = ArchiveRun()
    batch: list[bytes] = []
    day = ""

    def flush() -> None:
        if not batch:
            return
        first, last = orjson.loads(batch[0]), orjson.loads(batch[-1])
        name = f"{EVENTS}{day}/{first['seq']:012d}-{last['seq']:012d}.jsonl.gz"
        data = gzip.compress(b"\n".join(batch) + b"\n", compresslevel=6, mtime=0)
        with _reaching(target):
            dest.write(name, data)
            dest.write(CURSOR, orjson.dumps({"seq": last["seq"], "hash": last["hash"]}))
        run.files += 1
        run.last = (last["seq"], last["hash"])
        batch.clear()

    for line in lines:
        line_day = _day(line)
        if batch and (line_day != day or len(batch) >= FILE_EVENTS):
            flush()
        day = line_day
        batch.append(line)
        run.events += 1
    flush()
    return run


def archived_lines(target: str, dest: Destination) -> Iterator[bytes]:
    """Every archived event in chain order (files are named by their first event)."""
    with _reaching(target):
        names = [n for n in dest.names(EVENTS) if n.endswith(".jsonl.gz")]
    names.sort(key=lambda n: n.rsplit("/", 1)[-1])
    for name in names:
        with _reaching(target):
            data = dest.read(name)
        if data is None:
            raise CliError(f"{name} disappeared from {target} while it was read")
        yield from (line for line in gzip.decompress(data).split(b"\n") if line)
