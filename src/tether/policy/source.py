"""Cedar source text as statements with positions.

cedarpy reports parse errors without positions, so tether splits the text itself:
each statement is parsed alone, and the failing token is found by re-parsing prefixes
that end on token boundaries (strings and comments are never cut).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass

import cedarpy

__all__ = [
    "Position",
    "SourceError",
    "Statement",
    "locate_error",
    "position_of",
    "split_statements",
]

_EOF_MESSAGES = ("unexpected end of input",)
MAX_SCANNED_TOKENS = 2000
"""Past this many tokens a failing statement is reported at its start (each probe re-parses)."""
_TOKEN_MESSAGES = ("unexpected token", "invalid token")
_QUOTED = re.compile(r"`([^`]+)`")
_TRAILING_WORD = re.compile(r":\s*([A-Za-z_][\w:\"]*)\s*$")


@dataclass(frozen=True, slots=True)
class Position:
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class SourceError:
    """One problem in a policy file, at a 1-based line and column."""

    line: int
    column: int
    message: str

    def as_dict(self) -> dict[str, object]:
        return {"line": self.line, "column": self.column, "message": self.message}


@dataclass(frozen=True, slots=True)
class Statement:
    """One policy as written: its text, where it starts in the file, its token boundaries."""

    text: str
    offset: int
    boundaries: tuple[int, ...]


def position_of(source: str, offset: int) -> Position:
    line = source.count("\n", 0, offset) + 1
    column = offset - (source.rfind("\n", 0, offset) + 1) + 1
    return Position(line, column)


def _scan(source: str) -> tuple[list[tuple[int, int]], list[int]]:
    """Statement spans (start, end) and the offsets where a token ends."""
    spans: list[tuple[int, int]] = []
    boundaries: list[int] = []
    start: int | None = None
    i, n = 0, len(source)
    while i < n:
        ch = source[i]
        if ch.isspace():
            i += 1
            continue
        if source.startswith("//", i):
            newline = source.find("\n", i)
            i = n if newline < 0 else newline + 1
            continue
        if start is None:
            start = i
        if ch == '"':
            i += 1
            while i < n and source[i] != '"':
                i += 2 if source[i] == "\\" else 1
            i = min(i + 1, n)
        elif ch.isalnum() or ch == "_":
            while i < n and (source[i].isalnum() or source[i] == "_"):
                i += 1
        elif source.startswith(("::", "==", "!=", "<=", ">=", "&&", "||"), i):
            i += 2
        else:
            i += 1
        boundaries.append(i)
        if ch == ";":
            spans.append((start, i))
            start = None
    if start is not None:
        spans.append((start, boundaries[-1]))
    return spans, boundaries


def split_statements(source: str) -> list[Statement]:
    """Linear in the source: each statement takes its slice of the sorted token ends."""
    spans, boundaries = _scan(source)
    return [
        Statement(
            text=source[begin:end],
            offset=begin,
            boundaries=tuple(
                b - begin
                for b in boundaries[bisect_right(boundaries, begin) : bisect_right(boundaries, end)]
            ),
        )
        for begin, end in spans
    ]


def _parse_error(text: str) -> str | None:
    try:
        cedarpy.PolicySet.from_str(text)
    except ValueError as exc:
        return str(exc)
    return None


def _failing_token_start(statement: Statement) -> int:
    """The start of the first token after which the text can no longer be completed."""
    if len(statement.boundaries) > MAX_SCANNED_TOKENS:
        return 0
    previous = 0
    for boundary in statement.boundaries:
        error = _parse_error(statement.text[:boundary])
        if error is not None and not error.startswith(_EOF_MESSAGES):
            token = statement.text[previous:boundary]
            return previous + len(token) - len(token.lstrip())
        previous = boundary
    return len(statement.text)


def locate_error(source: str, statement: Statement, message: str) -> SourceError:
    """Where in ``source`` the ``message`` about ``statement`` points."""
    if message.startswith(_TOKEN_MESSAGES + _EOF_MESSAGES):
        relative = _failing_token_start(statement)
    else:
        relative = 0
        for snippet in _QUOTED.findall(message) + _TRAILING_WORD.findall(message):
            found = statement.text.find(snippet)
            if found < 0 and snippet.startswith('Action::"'):
                found = statement.text.find(snippet.removeprefix("Action::"))
            if found >= 0:
                relative = found
                break
    at = position_of(source, statement.offset + relative)
    return SourceError(at.line, at.column, message)
