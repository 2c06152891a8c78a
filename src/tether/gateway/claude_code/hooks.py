"""``POST /hooks/claude-code``: Claude Code's HTTP hooks, every event.

PreToolUse: each action the tool would take goes through the pipeline (stopping at the
first refusal) and the answer is ``hookSpecificOutput.permissionDecision``: ``allow``,
``deny``, or — when an approval is pending — ``deny`` with the approval id (``ask`` with
``?pending=ask``, letting the local user decide). ``?wait=SECONDS`` holds the hook while
the approval is decided. PostToolUse (and PostToolUseFailure) is recorded in the audit
trail, and its answer counted by the loop guards; other events are recorded as they come.

A session with a task (``tether tasks``) gets the task block back in its context as
``hookSpecificOutput.additionalContext`` when the pipeline says so (SessionStart — also
after compaction —, every N tool batches, after M turns without a checkpoint, a drift
reminder), and a Stop is answered ``decision: block`` while it holds a batch not verified.

Whatever the event, a session that was stopped (killed, paused, its agent or project
stopped, its budget spent) is answered ``continue: false`` with the reason: Claude Code
then ends the whole turn, even right after a tool that was running when the kill came.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tether.approvals.waiter import ApprovalWaiter
from tether.errors import AuthenticationFailed, BadRequest
from tether.gateway.claude_code.reading import HookInput, ReadHook, read_hook, unread_error
from tether.gateway.credentials import admit_agent, presented_credential
from tether.pipeline import Action, Context, Pipeline, ToolResult, ToolUse
from tether.pipeline.long_poll import decide_as_one
from tether.redaction.text import redact_text
from tether.web.bodies import read_limited
from tether.web.errors import set_error_renderer
from tether.web.heavy_work import HEAVY_BODY_BYTES, HeavyWorkBusy
from tether.web.shared_lane import HEAVY_WORK_KEY, heavy_work_of

__all__ = ["HookInput", "add_claude_code_hook_routes"]

PATH = "/hooks/claude-code"
SOURCE = "claude_code_hook"
MAX_WAIT_SECONDS = 600
PIPELINE_KEY = web.AppKey("hook_pipeline", Pipeline)
WAITER_KEY = web.AppKey("hook_waiter", ApprovalWaiter)
LIMIT_KEY = web.AppKey("hook_body_limit", int)
STOPPED = frozenset(
    {
        "session_terminated",
        "session_paused",
        "session_budget_exhausted",
        "agent_stopped",
        "agent_quarantined",
        "agent_revoked",
        "project_paused",
        "fleet_paused",
    }
)
"""Refusals that stop the session as a whole, not only this tool call."""


def _tethered(reason: str) -> str:
    """Every reason the agent reads, credentials blanked as in the audit trail."""
    reason = redact_text(reason)
    return reason if reason.startswith("tether:") else f"tether: {reason}"


def _answer(decision: str, reason: str, code: str | None = None) -> web.Response:
    body: dict[str, Any] = {
        "hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "permissionDecision": decision,
            "permissionDecisionReason": _tethered(reason),
        }
    }
    if code in STOPPED:
        body |= {"continue": False, "stopReason": _tethered(reason)}
    return web.json_response(body)


def _stop(reason: str) -> web.Response:
    return web.json_response({"continue": False, "stopReason": _tethered(reason)})


def _carry_on(event: str, ctx: Context) -> web.Response:
    """What the pipeline decided for a session that may go on: the task block to put
    back in view, or a Stop held while a claimed batch is unverified."""
    if event == "Stop" and ctx.hold_stop:
        return web.json_response({"decision": "block", "reason": ctx.hold_stop})
    if ctx.task_context:
        return web.json_response(
            {
                "hookSpecificOutput": {
                    "hookEventName": event,
                    "additionalContext": ctx.task_context,
                }
            }
        )
    return web.json_response({})


def _refused(message: str) -> dict[str, Any]:
    """A refusal of the hook call itself (a bad, rotated or revoked key), answered before
    the body says which event it is: stops the turn whatever the event (fail closed).
    Claude Code discards a ``hookSpecificOutput`` naming another event, continue and all,
    so this carries none; the top-level ``decision: block`` denies a PreToolUse (found
    with the real CLI: ``continue: false`` alone lets the tool run)."""
    reason = _tethered(message)
    return {"continue": False, "stopReason": reason, "decision": "block", "reason": reason}


def _error_body(code: str, message: str) -> dict[str, Any]:
    """Refusals of the hook call itself (bad JSON, too large) stop the turn whatever the
    event: tether could not check, so nothing goes on (fail closed)."""
    return _refused(message) | {"error": {"code": code, "message": message}}


def _wait_seconds(request: web.Request) -> float:
    raw = request.query.get("wait", "0")
    try:
        seconds = float(raw)
    except ValueError:
        raise BadRequest(f"wait={raw!r} is not a number of seconds") from None
    if not 0 <= seconds <= MAX_WAIT_SECONDS:
        raise BadRequest(f"wait must be between 0 and {MAX_WAIT_SECONDS} seconds")
    return seconds


async def _read(request: web.Request) -> ReadHook:
    """The body read: on the loop when small, in the heavy-work lane (another process,
    at most one at a time) when large. Both run ``read_hook``: the same answer."""
    body = await read_limited(request, request.app[LIMIT_KEY])
    if len(body) > HEAVY_BODY_BYTES:
        read = await request.app[HEAVY_WORK_KEY].run(read_hook, body, size=len(body))
    else:
        read = read_hook(body)
    if not isinstance(read, ReadHook):
        raise unread_error(read)
    return read


def _tool_name(hook: HookInput) -> str:
    if not hook.tool_name:
        raise BadRequest(f"a {hook.hook_event_name} hook needs tool_name")
    return hook.tool_name


def _tool_use(read: ReadHook, tool_name: str) -> ToolUse:
    """The call as the guards see it: its input stayed where it was read, its
    fingerprint came back."""
    return ToolUse(read.hook.tool_use_id or "", tool_name, {}, fingerprint=read.tool_fingerprint)


async def _pre_tool_use(request: web.Request, read: ReadHook) -> web.Response:
    hook = read.hook
    wait = _wait_seconds(request)
    credential = presented_credential(request.headers)
    tool_name = _tool_name(hook)
    tool_use = _tool_use(read, tool_name)
    actions = [
        Action(
            source=SOURCE,
            credential=credential,
            action=found.action,
            resource=found.resource,
            session_id=hook.session_id,
            attributes={
                "tool": tool_name,
                "tool_use_id": hook.tool_use_id,
                "input_summary": read.summary,
                **({"not_understood": found.detail} if not found.understood else {}),
            },
            understood=found.understood,
            too_complex=found.detail if found.too_complex else None,
            tool_use=tool_use,
        )
        for found in read.actions
    ]
    decisions = await decide_as_one(
        request.app[PIPELINE_KEY], request.app[WAITER_KEY], actions, wait
    )
    refused = next((d for d in decisions if not d.allowed and not d.pending), None)
    if refused is not None:
        return _answer("deny", refused.reason, refused.code)
    pending = [d for d in decisions if d.pending]
    if pending:
        ask = request.query.get("pending") == "ask"
        reasons = " | ".join(dict.fromkeys(d.reason for d in pending))  # a group: said once
        return _answer("ask" if ask else "deny", reasons)
    return _answer("allow", "; ".join(d.reason for d in decisions))


async def _post_tool_use(request: web.Request, read: ReadHook) -> web.Response:
    hook = read.hook
    tool_name = _tool_name(hook)
    found = read.actions
    tool_use_id = hook.tool_use_id or ""
    ctx = Context()
    refusal = await request.app[PIPELINE_KEY].observe(
        Action(
            source=SOURCE,
            credential=presented_credential(request.headers),
            action=f"tool_result:{tool_name}",
            resource=found[0].resource if found else tool_name,
            session_id=hook.session_id,
            attributes={
                "tool": tool_name,
                "tool_use_id": hook.tool_use_id,
                "actions": [f"{f.action} {f.resource}" for f in found],
                "input_summary": read.summary,
                "response_digest": read.response_digest,
            },
            tool_use=_tool_use(read, tool_name),
            tool_results=[ToolResult(tool_use_id, read.failed, read.response_fingerprint)]
            if tool_use_id
            else [],
        ),
        "error" if read.failed else "ok",
        f"{tool_name} finished",
        ctx,
    )
    return _stop(refusal.reason) if refusal is not None else _carry_on(hook.hook_event_name, ctx)


async def _other_event(request: web.Request, hook: HookInput) -> web.Response:
    """SessionStart, Stop, UserPromptSubmit, PostToolBatch, Notification …: recorded, and
    answered with a stop when the session was stopped, else with what the pipeline
    decided (the task block, a held Stop)."""
    ctx = Context()
    refusal = await request.app[PIPELINE_KEY].observe(
        Action(
            source=SOURCE,
            credential=presented_credential(request.headers),
            action=f"hook:{hook.hook_event_name}",
            resource=f"session:{hook.session_id}",
            session_id=hook.session_id,
            attributes={"source": hook.source} if hook.source else {},
        ),
        "ok",
        f"Claude Code reported {hook.hook_event_name}"
        + (f" ({hook.source})" if hook.source else ""),
        ctx,
    )
    return _stop(refusal.reason) if refusal is not None else _carry_on(hook.hook_event_name, ctx)


async def claude_code_hook(request: web.Request) -> web.Response:
    try:
        await admit_agent(request, SOURCE)
    except AuthenticationFailed as exc:
        return web.json_response(_refused(exc.message))
    try:
        read = await _read(request)
    except HeavyWorkBusy as exc:
        # Answered 200 so that Claude Code reads the refusal: a non-2xx answer to a hook
        # is a non-blocking error, and the tool would run unchecked (fail closed).
        return web.json_response(_refused(exc.message) | {"error": _busy(exc)})
    hook = read.hook
    if hook.hook_event_name == "PreToolUse":
        return await _pre_tool_use(request, read)
    if hook.hook_event_name in ("PostToolUse", "PostToolUseFailure"):
        return await _post_tool_use(request, read)
    return await _other_event(request, hook)


def _busy(exc: HeavyWorkBusy) -> dict[str, str]:
    return {"code": exc.code, "message": exc.message}


def add_claude_code_hook_routes(
    app: web.Application, pipeline: Pipeline, waiter: ApprovalWaiter, body_limit: int
) -> None:
    app[PIPELINE_KEY] = pipeline
    app[WAITER_KEY] = waiter
    app[LIMIT_KEY] = body_limit
    heavy_work_of(app, ("tether.gateway.claude_code.reading",))
    app.router.add_post(PATH, claude_code_hook)
    set_error_renderer(app, PATH, _error_body)
