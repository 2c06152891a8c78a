"""``NAME=value`` assignments whose name says the value is a secret (``DB_PASSWORD=…``,
``"password": "…"``), found in time linear in the text. The single-regex form tried its
name lookahead (up to 65 characters, nine keywords at each) at every word start: 13 ms on
1.2 KB of ``a.a.a.``.
Here one pass finds runs of name characters that hold a keyword and are followed by a
separator and a value; only those are examined, each within its last 129 characters."""

from __future__ import annotations

import bisect
import re

_KEYWORD = (
    r"(?:(?i:passw|pwd|secret|token|credential|cookie|api[_-]?key|private[_-]?key"
    r"|access[_-]?key)|KEY)"
)
_QUOTE = r"[\"']?"
"""A quoted name's closing quote (``"password": "…"`` in JSON or YAML)."""
_SEPARATOR = r"\s{0,16}+[:=]\s{0,16}+"
_VALUE = (
    r"\"(?:[^\"\\]|\\.){0,4096}+\"|'(?:[^'\\]|\\.){0,4096}+'"
    r"|\"[^\"]{0,4096}+\"|'[^']{0,4096}+'|[^\s,;&|\"']++"
)
"""A quoted value to its closing quote, past escaped ones (``"a\\"b"`` in JSON); one whose
backslash ends it (``'a\\'`` in a shell) to the next quote."""

CANDIDATE = re.compile(
    rf"(?<![\w.\-])(?>[\w.\-]*?{_KEYWORD})[\w.\-]*+{_QUOTE}(?:{_SEPARATOR})(?:{_VALUE})"
)
"""A whole run of name characters that holds a keyword, then a separator and a value:
every assignment the rules below accept lies in one (and it is cheap to find, as each
run is read once from its start)."""

_RUN_END = re.compile(r"[\w.\-]*+")
_SEPARATOR_AT = re.compile(_SEPARATOR)
_VALUE_AT = re.compile(_VALUE)
_NAME_START = re.compile(r"\b[A-Za-z_]")
_KEYWORD_STARTS = re.compile(rf"(?={_KEYWORD})")
_NAME_CHARS = 129
_KEYWORD_WITHIN = 65


def _name_start(text: str, start: int, end: int) -> int | None:
    """The leftmost name start in ``text[start:end]`` (a word boundary, then a letter or
    ``_``) with a keyword starting within its first 66 characters (``PASSWORD`` itself
    included), at most 129 characters long."""
    lowest = max(start, end - _NAME_CHARS)
    keywords = [m.start() for m in _KEYWORD_STARTS.finditer(text, lowest, end)]
    for position in range(lowest, end):
        if _NAME_START.match(text, position) is None:
            continue
        first = bisect.bisect_left(keywords, position)
        if first < len(keywords) and keywords[first] <= position + _KEYWORD_WITHIN:
            return position
    return None


def _separator_after(text: str, run_end: int) -> re.Match[str]:
    """The separator after a name, past its closing quote if it has one (``CANDIDATE``
    found one of the two)."""
    separator = _SEPARATOR_AT.match(text, run_end)
    if separator is None:
        separator = _SEPARATOR_AT.match(text, run_end + 1)
    assert separator is not None
    return separator


def redact_assignments(text: str, redacted: str) -> str:
    """``text`` with the value of every secret-named assignment replaced by ``redacted``:
    the name and separator are kept, as ``NAME=[redacted]``."""
    pieces: list[str] = []
    copied = 0
    position = 0
    while (candidate := CANDIDATE.search(text, position)) is not None:
        run = _RUN_END.match(text, candidate.start())
        assert run is not None
        run_end = run.end()
        start = _name_start(text, max(candidate.start(), position), run_end)
        if start is None:
            position = run_end
            continue
        separator = _separator_after(text, run_end)
        value = _VALUE_AT.match(text, separator.end())
        assert value is not None
        pieces.append(text[copied : separator.end()])
        pieces.append(redacted)
        copied = position = value.end()
    if not pieces:
        return text
    pieces.append(text[copied:])
    return "".join(pieces)
