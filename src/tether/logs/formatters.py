"""tether's two log formats, each able to format a line without a ``LogRecord``.

``line`` gives exactly what ``format`` gives for a record with the same name, level,
message, creation time and ``extra`` fields (and no exception): the access log writes
its line per request that way when nothing but tether's own handler would see the record
(``tether.logs.setup.direct_handler``). The time of day is formatted once a second.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

__all__ = ["JsonFormatter", "LineFormatter", "TextFormatter"]

_STANDARD = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)
JSON_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"
MSEC_FORMAT = "%s,%03d"
"""logging's default (``Formatter.default_msec_format``)."""


class LineFormatter(logging.Formatter):
    """A formatter whose time of day is formatted once per second and format."""

    _stamp: tuple[int, str | None, str] = (-1, None, "")

    def _time_of_day(self, created: float, datefmt: str | None) -> str:
        second = int(created)
        cached_second, cached_format, stamp = self._stamp
        if second != cached_second or datefmt != cached_format:
            stamp = time.strftime(datefmt or self.default_time_format, self.converter(created))
            self._stamp = (second, datefmt, stamp)  # one assignment: safe across threads
        return stamp

    def line(
        self, name: str, levelno: int, message: str, created: float, fields: dict[str, Any]
    ) -> str:
        raise NotImplementedError


def _msecs(created: float) -> float:
    """As ``LogRecord`` computes it."""
    return int((created - int(created)) * 1000) + 0.0


class TextFormatter(LineFormatter):
    """``time level logger: message``; ``extra`` fields are not shown."""

    FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

    def __init__(self) -> None:
        super().__init__(self.FORMAT)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        stamp = self._time_of_day(record.created, datefmt)
        return stamp if datefmt else MSEC_FORMAT % (stamp, record.msecs)

    def line(
        self, name: str, levelno: int, message: str, created: float, fields: dict[str, Any]
    ) -> str:
        stamp = MSEC_FORMAT % (self._time_of_day(created, None), _msecs(created))
        return f"{stamp} {logging.getLevelName(levelno)} {name}: {message}"


class JsonFormatter(LineFormatter):
    """One JSON object per line: time, level, logger, message, and every ``extra`` field."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {k: v for k, v in vars(record).items() if k not in _STANDARD}
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        return self.line(record.name, record.levelno, record.getMessage(), record.created, fields)

    def line(
        self, name: str, levelno: int, message: str, created: float, fields: dict[str, Any]
    ) -> str:
        entry: dict[str, Any] = {
            "ts": self._time_of_day(created, JSON_TIME_FORMAT) + f".{int(_msecs(created)):03d}Z",
            "level": logging.getLevelName(levelno),
            "logger": name,
            "message": message,
        }
        entry.update(fields)
        return json.dumps(entry, default=str)
