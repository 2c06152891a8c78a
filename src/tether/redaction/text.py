"""The one redactor for everything tether stores: secrets in text are blanked before any
audit event is written (``tether.audit.normalise`` applies it to every string field), and
tool inputs are kept as a digest of all of them plus a short redacted summary.

Blanking errs on the side of hiding: a false positive costs a less readable trail, a
false negative leaks a credential into a chain that cannot be pruned.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from typing import Any

import orjson

from tether.redaction.assignments import CANDIDATE as ASSIGNMENT_CANDIDATE
from tether.redaction.assignments import redact_assignments

__all__ = [
    "CACHED_CHARS",
    "REDACTED",
    "digest",
    "is_plain_id",
    "is_secret_name",
    "redact_text",
    "redacted_summary",
    "remembered",
]

REDACTED = "[redacted]"
SUMMARY_CHARS = 200
SUMMARY_MARGIN = 1_000

SECRET_NAMES = re.compile(
    r"(secret|passw|pwd|api[_-]?key|authorization|credential|private[_-]?key|access[_-]?key"
    r"|(^|[_\-.])token$|^token|auth[_-]?token|session[_-]?key|cookie)",
    re.I,
)
"""Names (attribute keys, flags, variables) whose values are secrets."""

_KNOWN_FORMATS = re.compile(
    r"sk-ant-[A-Za-z0-9_\-]{8,}"
    r"|\bsk-[A-Za-z0-9_\-]{20,}"
    r"|\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{10,}"
    r"|\btt[ha]_[A-Za-z0-9_\-]{8,}"
    r"|\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA)[0-9A-Z]{16}\b"
    r"|\bgh[pousr]_[A-Za-z0-9]{20,}"
    r"|\bgithub_pat_[A-Za-z0-9_]{20,}"
    r"|\bglpat-[A-Za-z0-9_\-]{16,}"
    r"|\bxox[abposr]-[A-Za-z0-9\-]{10,}"
    r"|\bAIza[0-9A-Za-z_\-]{30,}"
    r"|\beyJ[A-Za-z0-9_\-]{8,4096}\.[A-Za-z0-9_\-]{8,4096}\.[A-Za-z0-9_\-]{8,}"
    r"|https?://hooks\.slack\.com/[^\s\"'<>]+"
    r"|https?://(?:[\w-]+\.)*discord(?:app)?\.com/api/webhooks/[^\s\"'<>]+"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)",
    re.S,
)
# Linear in the text: every repetition that could rescan the rest of the text from each
# start position is bounded or possessive (unbounded, 8,000 dashes took 6 s to scan).
_AUTH_SCHEMES = re.compile(r"\b((?:bearer|basic|token)\s{1,16})[A-Za-z0-9._~+/=\-]{8,}", re.I)
_URL_CREDENTIALS = re.compile(
    r"\b([a-z][a-z0-9+.\-]{0,31}://[^/\s:@\"'<>]{0,256}:)[^@\s/\"'<>]{1,256}@", re.I
)
_SECRET_FLAGS = re.compile(
    r"(?<![\w-])(--?(?=[\w-]{0,64}?(?:password|passwd|secret|token|api-?key|access-key"
    r"|private-key|cookie))[\w-]{1,128}+)"
    r"(=|\s{1,16}+)(\"(?:[^\"\\]|\\.){0,4096}+\"|\"[^\"]{0,4096}+\"|'[^']{0,4096}+'|\S++)",
    re.I,
)
_USER_PASSWORD = re.compile(
    r"(?<![\w-])(?:-u\s{0,16}+|--user(?:\s{1,16}+|=))([\"']?)[^\s:\"']{1,256}:"
)
"""``curl -u user:password`` and ``--user``, up to the password (quoted or not)."""
_PASSWORD_REST = {
    '"': re.compile(r'(?:[^"\\]|\\.){1,4096}+(?=")|[^"]{1,4096}+'),
    "'": re.compile(r"[^']{1,4096}+"),
    "": re.compile(r"[^\s\"']{1,256}+"),
}
_PASSWORD_ARGUMENTS = (
    (re.compile(r"\b(?:mysql\w*|mariadb\w*)\b", re.I), re.compile(r"(\s-p)(?=[^\s-])\S+")),
    (
        re.compile(r"\b(?:docker\s{1,16}+login|sshpass)\b", re.I),
        re.compile(r"(\s-p\s{0,16}+)(?=[^\s-])\S+"),
    ),
    (re.compile(r"\bredis-cli\b", re.I), re.compile(r"(\s(?:-a|--pass)\s{1,16}+)(?=[^\s-])\S+")),
)
"""Tools that take a password with a flag of their own (``mysql -pSECRET``, ``docker login
-p SECRET``), and that flag: elsewhere ``-p 8080`` is a port, as it is for ``redis-cli``."""
_COOKIE_HEADER = re.compile(
    r"(?<![\w-])((?:set-)?cookie\s{0,16}+:\s{0,16}+)(?=[^\s\"'])[^\r\n\"']{1,8192}+", re.I
)
"""A ``Cookie:`` (or ``Set-Cookie:``) header's whole value: every cookie in it, not only
the first (``Cookie: theme=dark; sid=…``), to the line's end or a closing quote."""
_AWS_SECRET = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")


def _scoped(pattern: re.Pattern[str]) -> str:
    """``pattern`` with its flags made inline, so it can join an alternation."""
    flags = "".join(letter for flag, letter in ((re.I, "i"), (re.S, "s")) if pattern.flags & flag)
    return f"(?{flags}:{pattern.pattern})" if flags else f"(?:{pattern.pattern})"


_ANY_CANDIDATE = re.compile(
    "|".join(
        _scoped(pattern)
        for pattern in (
            _KNOWN_FORMATS,
            _URL_CREDENTIALS,
            _AUTH_SCHEMES,
            _SECRET_FLAGS,
            _USER_PASSWORD,
            _COOKIE_HEADER,
            ASSIGNMENT_CANDIDATE,
            *(argument for _, argument in _PASSWORD_ARGUMENTS),
            _AWS_SECRET,
        )
    )
)
"""Matches wherever any of the patterns below would: text it does not match is returned
as it is after one scan instead of seven."""
CACHED_CHARS = 256
_OUR_ID = re.compile(r"[0-9a-f]{32}")
"""tether's own ids (``new_id``): lowercase hex of a length no pattern matches."""
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
"""Session ids (Claude Code's, and those tether derives for a conversation): no pattern
matches one, and a scan of a new one costs tens of microseconds on every event."""
_REQUEST_ID = re.compile(r"req_[A-Za-z0-9]{1,39}")
"""Anthropic's request ids (``request-id``, on every completion event): fewer than the 40
letters and digits in a row that the AWS secret's shape needs, and no other pattern's."""


@functools.lru_cache(maxsize=4_096)
def is_secret_name(name: str) -> bool:
    return SECRET_NAMES.search(name) is not None


def _aws_secret(match: re.Match[str]) -> str:
    """40 base64 characters of mixed case with a digit look like an AWS secret access key;
    hex digests and git SHAs (one case) do not."""
    text = match.group(0)
    mixed = any(c.isupper() for c in text) and any(c.islower() for c in text)
    return REDACTED if mixed and any(c.isdigit() for c in text) else text


def is_plain_id(text: str) -> bool:
    """Whether ``text`` is an id of a shape no pattern matches (tether's, a UUID, an
    Anthropic request id): nothing to blank, and each one new, so not worth remembering."""
    size = len(text)
    if size == 32:
        return _OUR_ID.fullmatch(text) is not None
    if size == 36:
        return _UUID.fullmatch(text) is not None
    return text.startswith("req_") and _REQUEST_ID.fullmatch(text) is not None


def redact_text(text: str) -> str:
    """``text`` with anything that looks like a credential blanked: known key formats,
    bearer tokens, passwords in URLs, secret flags and ``NAME=value`` assignments.
    Short texts (names, ids, models, codes) repeat on every event and are remembered."""
    if is_plain_id(text):
        return text
    if len(text) <= CACHED_CHARS:
        return _redact_short(text)
    return _redact_any(text)


@functools.lru_cache(maxsize=16_384)
def _redact_short(text: str) -> str:
    return _redact_any(text)


def remembered() -> dict[str, int]:
    """Entries in this module's caches (``tether_in_memory_entries``): each new agent,
    model or tool adds a few until the bound."""
    return {
        "redacted_texts": _redact_short.cache_info().currsize,
        "secret_names": is_secret_name.cache_info().currsize,
    }


_TRIGGERS = (
    # known key formats
    "sk-", "_live_", "_test_", "tth_", "tta_", "akia", "asia", "agpa", "aida", "aroa", "anpa",
    "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "glpat-", "xox", "aiza", "eyj",
    "-----begin",
    # URLs (credentials, Slack and Discord webhooks), auth schemes
    "://", "bearer", "basic", "token",
    # secret flags and assignments
    "passw", "pwd", "secret", "credential", "cookie", "api_key", "apikey", "api-key", "private_key",
    "privatekey", "private-key", "access_key", "accesskey", "access-key",
    # curl -u user:SECRET, mysql -pSECRET, docker login -p SECRET, sshpass, redis-cli -a
    "-u", "mysql", "mariadb", "docker", "sshpass", "redis-cli",
)  # fmt: skip
"""Lowercase text one of which every pattern's match holds (``KEY`` aside, which the
assignments match in capitals only, and the AWS secret's shape, which has no text)."""


_FOLDED_AS_ASCII = str.maketrans({"\u017f": "s", "\u0131": "i", "\u0307": None})
"""What the patterns' case-insensitive matching takes for an ASCII letter that ``lower``
does not make one: the long s and the dotless i (``re`` matches them as ``s`` and ``i``),
and the dotted capital I, which ``lower`` turns into ``i`` and a combining dot (the Kelvin
sign becomes ``k``)."""


def _redact_any(text: str) -> str:
    """Text that holds none of the patterns' ``_TRIGGERS`` and nothing shaped as an AWS
    secret is returned after a few substring searches: Python's regex engine tries each
    alternative of the full scan at every position (about 1 µs a character: 0.3 ms for an
    approval's reason, four times a call)."""
    lowered = text.lower()
    if not lowered.isascii():
        lowered = lowered.translate(_FOLDED_AS_ASCII)
    if (
        "KEY" not in text
        and not any(trigger in lowered for trigger in _TRIGGERS)
        and _AWS_SECRET.search(text) is None
    ):
        return text
    return _redact_scan(text)


def _redact_scan(text: str) -> str:
    if _ANY_CANDIDATE.search(text) is None:
        return text
    original = text
    text = _KNOWN_FORMATS.sub(REDACTED, text)
    text = _URL_CREDENTIALS.sub(rf"\1{REDACTED}@", text)
    text = _AUTH_SCHEMES.sub(rf"\1{REDACTED}", text)
    text = _SECRET_FLAGS.sub(rf"\1\2{REDACTED}", text)
    text = _blank_user_passwords(text)
    text = _COOKIE_HEADER.sub(rf"\1{REDACTED}", text)
    text = redact_assignments(text, REDACTED)
    for tool, argument in _PASSWORD_ARGUMENTS:
        if tool.search(original):
            text = argument.sub(rf"\1{REDACTED}", text)
    return _AWS_SECRET.sub(_aws_secret, text)


def _blank_user_passwords(text: str) -> str:
    """The password of each ``-u user:password``, to its closing quote when quoted."""
    pieces: list[str] = []
    copied = 0
    for flag in _USER_PASSWORD.finditer(text):
        if flag.start() < copied:
            continue
        quote, start = flag.group(1), flag.end()
        if not quote and text[start : start + 1] in ("'", '"'):
            quote, start = text[start], start + 1
        rest = _PASSWORD_REST[quote].match(text, start)
        if rest is None:
            continue
        pieces += [text[copied : flag.end()], REDACTED]
        copied = rest.end()
    if not pieces:
        return text
    pieces.append(text[copied:])
    return "".join(pieces)


def digest(value: Any) -> str:
    """SHA-256 of the canonical JSON: equal inputs give equal digests (loop detection).
    orjson first: it serialises 1024-deep input that ``json`` cannot (RecursionError)."""
    try:
        canonical = orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str)
    except TypeError:
        canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(canonical).hexdigest()


def _redact(value: Any, room: list[int], depth: int = 0) -> Any:
    """``value`` with secrets blanked, scanning at most ``room[0]`` characters in all:
    past it (more than a summary can show) the rest is left out unread."""
    if depth > 8 or room[0] <= 0:
        return "…"
    if isinstance(value, dict):
        kept: dict[str, Any] = {}
        for key, item in value.items():
            if room[0] <= 0:
                break
            name = str(key)[:128]
            room[0] -= len(name) + 4
            kept[name] = REDACTED if is_secret_name(name) else _redact(item, room, depth + 1)
        return kept
    if isinstance(value, list):
        return [_redact(item, room, depth + 1) for item in value[:20]]
    if isinstance(value, str):
        window = value[: room[0]]
        room[0] -= len(window) + 2
        return redact_text(window)
    room[0] -= 8
    return value


def redacted_summary(value: Any, limit: int = SUMMARY_CHARS) -> str:
    """At most ``limit`` characters: strings are cut well past what can show before they
    are redacted, and the scan stops there, so a megabyte of tool input costs what a short
    one does. The margin keeps a secret that starts in view and runs past the cut
    recognisable (a PEM key to its end, or to the cut: both are blanked)."""
    text = json.dumps(
        _redact(value, [limit + SUMMARY_MARGIN]),
        separators=(",", ":"),
        default=str,
        ensure_ascii=False,
    )
    return text if len(text) <= limit else text[: limit - 1] + "…"
