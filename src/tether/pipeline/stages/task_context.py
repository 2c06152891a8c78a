"""Keeps a session's task in view: decides when the task block goes back into the agent's
context (SessionStart, every N tool batches, after M turns without a checkpoint, a drift
reminder; every model call when the project opted into ``system`` injection), holds a Stop
while the session has a claimed batch not yet verified, and watches for drift.

Never refuses: the front doors render what it decides (``Context.task_context``,
``system_addition``, ``hold_stop``)."""

from __future__ import annotations

from tether.clock import now_ms
from tether.pipeline.action import Action, Context, Verdict
from tether.pipeline.outcome import Outcome
from tether.store.tasks import TaskRecord, TaskStore
from tether.tasks.block import render_block
from tether.tasks.drift import DriftWatch, context_window
from tether.tasks.marks import TASK_RECHECK_MS, SessionMark, SessionMarks
from tether.tasks.settings import DriftSettings, load_drift_settings
from tether.tasks.views import load_view

__all__ = ["KeepTaskInView"]

START = "hook:SessionStart"
BATCH = "hook:PostToolBatch"
STOP = "hook:Stop"
PROMPT = "hook:UserPromptSubmit"
MODEL = "model:messages"
INJECTABLE = frozenset({START, BATCH, PROMPT})
"""Hook events whose answer may carry ``additionalContext`` (PostToolUse too)."""


def _injectable(action: str) -> bool:
    return action in INJECTABLE or action.startswith("tool_result:")


class KeepTaskInView:
    observes = True
    """Also runs for hook events (``Pipeline.observe``)."""

    def __init__(self, store: TaskStore, marks: SessionMarks, drift: DriftWatch) -> None:
        self._store = store
        self._marks = marks
        self._drift = drift

    async def check(self, action: Action, ctx: Context) -> Verdict | None:
        """Model calls of a session no hook or tool has tied to a task yet cost no store
        read (unless the project injects into ``system``): the hot path stays in memory."""
        identity, session = ctx.identity, ctx.session
        if ctx.preview or identity is None or session is None:
            return None
        name = action.action
        if not (_injectable(name) or name in (STOP, MODEL)):
            return None
        settings = load_drift_settings(identity.project.drift)
        if name == MODEL and not settings.system_prompt:
            known = self._marks.peek(session.id)
            if known is None or known.task is None:
                return None
        mark = self._marks.of(session.id)
        task = await self._task(mark, session.id, identity.agent.id, identity.project.id, name)
        if name == STOP:
            ctx.hold_stop = await self._unverified(session.id)
        if task is None:
            return None
        now = now_ms()
        if name == MODEL:
            mark.turns += 1
        elif name == BATCH:
            mark.batches += 1
        await self._drift.check(settings, identity, session, task.id, mark, now)
        if name == MODEL:
            if settings.system_prompt:
                ctx.system_addition = await self._block(mark, task)
        elif _injectable(name) and self._due(name, mark, settings):
            mark.batches, mark.turns_at_injection = 0, mark.turns
            mark.reminded = mark.reminder is not None
            ctx.task_context = await self._block(mark, task)
        return None

    async def settle(self, action: Action, ctx: Context, outcome: Outcome) -> None:
        """The latest request's input over the model's window: the context fill."""
        if action.action != MODEL or ctx.session is None or outcome.usage is None:
            return
        usage = outcome.usage
        mark = self._marks.peek(ctx.session.id)
        if mark is None or mark.task is None:
            return
        tokens = (
            usage.input_tokens + usage.cache_read_input_tokens + usage.cache_creation_input_tokens
        )
        mark.fill_percent = 100 * tokens / context_window(outcome.model or "")

    def _due(self, name: str, mark: SessionMark, settings: DriftSettings) -> bool:
        if name == START:
            return True
        if mark.reminder is not None and not mark.reminded:
            return True
        every = settings.reinject_every_batches
        if name == BATCH and every is not None and mark.batches >= every:
            return True
        after = settings.reinject_after_turns
        return (
            after is not None
            and mark.turns >= after
            and mark.turns - mark.turns_at_injection >= after
        )

    async def _task(
        self, mark: SessionMark, session_id: str, agent_id: str, project_id: str, name: str
    ) -> TaskRecord | None:
        """The session's task: asked of the store at SessionStart and otherwise at most
        every ``TASK_RECHECK_MS`` (or at once after this process changed the task)."""
        now = now_ms()
        if name != START and now - mark.checked_at < TASK_RECHECK_MS:
            return mark.task
        mark.checked_at = now
        task = await self._store.for_session(session_id, agent_id, project_id)
        if task != mark.task:
            mark.block = None
        mark.task = task
        return task

    async def _block(self, mark: SessionMark, task: TaskRecord) -> str:
        if mark.block is None:
            view = await load_view(self._store, task)
            mark.block = render_block(view, mark.reminder)
        return mark.block

    async def _unverified(self, session_id: str) -> str | None:
        now = now_ms()
        held = [b for b in await self._store.open_claims(session_id) if b.claimed_until > now]
        if not held:
            return None
        names = ", ".join(f"batch {b.number} of task {b.task_id}" for b in held)
        return (
            f"tether: {names} is claimed by this session and not verified yet: run the "
            "batch's verification and report it with complete_batch before stopping"
        )
