"""The access line written without a ``LogRecord`` is the line logging would have written,
in both formats, and it is written that way only when nothing but tether's own handler
would see the record."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tether.logs.formatters import JsonFormatter, LineFormatter, TextFormatter
from tether.logs.setup import BatchedStderrHandler, direct_handler

FIELDS: dict[str, Any] = {
    "method": "POST",
    "path": "/v1/messages",
    "status": 200,
    "duration_ms": 1.23,
    "agent": "a1",
    "session": None,
}
MESSAGE = "POST /v1/messages 200 1.2ms agent=a1 session=-"


def _record(created: float, fields: dict[str, Any]) -> logging.LogRecord:
    record = logging.getLogger("tether.access").makeRecord(
        "tether.access", logging.INFO, "", 0, MESSAGE, (), None, extra=fields
    )
    record.created, record.msecs = created, int((created - int(created)) * 1000) + 0.0
    return record


def _json() -> JsonFormatter:
    formatter = JsonFormatter()
    formatter.converter = time.gmtime
    return formatter


@pytest.mark.parametrize("make", [TextFormatter, _json])
def test_a_line_without_a_record_is_the_line_of_the_record(make: type[LineFormatter]) -> None:
    formatter = make()
    start = time.time()
    moments = [start + step / 7 for step in range(40)] + [1_800_000_000.0, 1_800_000_000.999]
    for created in moments:  # across second boundaries, the stamp cached and not
        expected = formatter.format(_record(created, FIELDS))
        assert formatter.line("tether.access", logging.INFO, MESSAGE, created, FIELDS) == expected
        assert formatter.format(_record(created, FIELDS)) == expected


def test_the_json_line_keeps_every_field_and_the_time_in_utc() -> None:
    text = _json().line("tether.access", logging.INFO, MESSAGE, 1_800_000_000.25, FIELDS)
    line = json.loads(text)
    assert line == {
        "ts": "2027-01-15T08:00:00.250Z",
        "level": "INFO",
        "logger": "tether.access",
        "message": MESSAGE,
        **FIELDS,
    }


@pytest.fixture
def handler() -> Iterator[BatchedStderrHandler]:
    read, write = os.pipe()
    handler = BatchedStderrHandler(fd=write)
    handler.setFormatter(TextFormatter())
    try:
        yield handler
    finally:
        handler.close()
        os.close(read)
        os.close(write)


@contextlib.contextmanager
def alone_on_the_root(handler: logging.Handler) -> Iterator[None]:
    """As ``configure_logging`` leaves the root logger (pytest's capture set aside)."""
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.handlers[:] = saved
        root.setLevel(level)


def test_the_line_goes_straight_to_tethers_handler_only_when_it_alone_would_see_it(
    handler: BatchedStderrHandler,
) -> None:
    logger = logging.getLogger("tether.access.test")
    assert direct_handler(logger, logging.INFO) is None  # pytest's capture sees records
    with alone_on_the_root(handler):
        _only_when_alone(logger, handler)


def _only_when_alone(logger: logging.Logger, handler: BatchedStderrHandler) -> None:
    assert direct_handler(logger, logging.INFO) is handler
    assert direct_handler(logger, logging.DEBUG) is None  # not enabled

    other = logging.Handler()  # a test's capture, an operator's handler
    logger.addHandler(other)
    assert direct_handler(logger, logging.INFO) is None
    logger.removeHandler(other)

    logger.addFilter(lambda record: True)
    assert direct_handler(logger, logging.INFO) is None
    logger.filters.clear()

    handler.setFormatter(logging.Formatter("%(message)s"))  # a format tether does not know
    assert direct_handler(logger, logging.INFO) is None
