"""Reading a Claude Code hook body: JSON, the model, the tool's actions, its redacted
summary and fingerprints, in one function that runs on the event loop for a small body and
in the heavy-work lane (another process) for a large one, so both give the same answer.

Only small values come back: a 1 MB body of small JSON objects costs ~20-150 ms to parse
and as much again to pickle, so the tool's input and response stay in the worker; what the
request needs of them (summary, digests, fingerprints, actions) is computed there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tether.commands.model import CommandAction
from tether.errors import BadRequest, TetherError
from tether.gateway.claude_code.tools import tool_actions
from tether.guards.fingerprints import result_fingerprint, tool_use_fingerprint
from tether.redaction.text import digest, redacted_summary
from tether.web.json_values import parse_json, validate

__all__ = ["HookInput", "ReadHook", "read_hook", "unread_error"]

TOOL_EVENTS = frozenset({"PreToolUse", "PostToolUse", "PostToolUseFailure"})


class HookInput(BaseModel):
    """What Claude Code sends; fields it may add later are ignored."""

    model_config = ConfigDict(extra="ignore")

    session_id: str = Field(min_length=1, max_length=128)
    hook_event_name: str = Field(min_length=1, max_length=64)
    tool_name: str | None = Field(None, min_length=1, max_length=256)
    tool_input: dict[str, Any] = Field(default_factory=dict)
    tool_response: Any = None
    tool_use_id: str | None = None
    cwd: str = "/"
    permission_mode: str | None = None
    source: str | None = Field(None, max_length=32)
    """SessionStart: ``startup``, ``resume``, ``clear`` or ``compact``."""


@dataclass(frozen=True, slots=True)
class ReadHook:
    """A hook body as the handler needs it; ``hook`` without its tool input and response."""

    hook: HookInput
    summary: str = ""
    actions: tuple[CommandAction, ...] = ()
    tool_fingerprint: int = 0
    """The tool call's guard fingerprint (``tool_use_fingerprint``)."""
    failed: bool = False
    """A PostToolUse whose tool failed (or PostToolUseFailure)."""
    response_digest: str = ""
    response_fingerprint: int = 0


@dataclass(frozen=True, slots=True)
class Unread:
    """Why the body was refused, carried out of the worker as plain values (an exception
    with keyword arguments does not survive pickling)."""

    code: str
    message: str


def _failed(hook: HookInput) -> bool:
    response = hook.tool_response
    return hook.hook_event_name == "PostToolUseFailure" or (
        isinstance(response, dict)
        and bool(response.get("is_error") or response.get("interrupted") or response.get("error"))
    )


def _tool_name(hook: HookInput) -> str:
    if not hook.tool_name:
        raise BadRequest(f"a {hook.hook_event_name} hook needs tool_name")
    return hook.tool_name


def _read(body: bytes) -> ReadHook:
    hook = validate(HookInput, parse_json(body))
    if hook.hook_event_name not in TOOL_EVENTS:
        return ReadHook(hook.model_copy(update={"tool_input": {}, "tool_response": None}))
    tool = _tool_name(hook)
    failed = _failed(hook)
    response = hook.tool_response
    post = hook.hook_event_name != "PreToolUse"
    return ReadHook(
        hook=hook.model_copy(update={"tool_input": {}, "tool_response": None}),
        summary=redacted_summary(hook.tool_input),
        actions=tuple(tool_actions(tool, hook.tool_input, hook.cwd)),
        tool_fingerprint=tool_use_fingerprint(tool, hook.tool_input),
        failed=failed,
        response_digest=digest(response) if post else "",
        response_fingerprint=result_fingerprint([response, failed]) if post else 0,
    )


def read_hook(body: bytes) -> ReadHook | Unread:
    """The body read, or why not (bad JSON, a missing field, an unreadable tool input)."""
    try:
        return _read(body)
    except TetherError as exc:
        return Unread(exc.code, exc.message)


def unread_error(unread: Unread) -> TetherError:
    """The refusal as the error the request answers with (same code and message)."""
    return BadRequest(unread.message, code=unread.code)
