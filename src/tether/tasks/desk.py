"""What an agent does with its task, whatever door it comes through (``/v1/tasks``, the
MCP tools): read it, write checkpoints, take and complete batches.

Each call first goes through the pipeline as an observation (who, which session, whether
it is stopped — a killed session can neither claim nor complete), which also audits it.
A failed verification moves the task to ``needs_attention``, alerts the project's
webhooks and is audited as tether's own event.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

from tether.audit.event import AuditEvent
from tether.audit.log import AuditLog
from tether.clock import iso_ms
from tether.errors import AuthenticationFailed, NotFound, TetherError
from tether.identity.directory import AgentIdentity, Directory
from tether.redaction.text import redact_text, redacted_summary
from tether.store.alerts import AlertStore
from tether.store.tasks import BatchRecord, TaskRecord, TaskStore
from tether.tasks.definition import TaskDefinition
from tether.tasks.marks import SessionMarks
from tether.tasks.views import load_view, view_dict

__all__ = ["CallRecorder", "Checkpoint", "Completion", "TaskDesk"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    done: str
    next: str
    decisions: list[str]
    notes: str

    def body(self) -> dict[str, Any]:
        return {
            "done": redact_text(self.done),
            "next": redact_text(self.next),
            "decisions": [redact_text(d) for d in self.decisions],
            "notes": redact_text(self.notes),
        }


@dataclass(frozen=True, slots=True)
class Completion:
    batch: int
    passed: bool
    output: str
    results: Any


@dataclass(frozen=True, slots=True)
class _Call:
    identity: AgentIdentity
    task: TaskRecord
    session_id: str


class CallRecorder(Protocol):
    """What records a task call as an agent's action (the pipeline does): who, which
    session, whether it is stopped. Returns the session's id; raises if refused."""

    async def record_call(
        self,
        *,
        source: str,
        credential: str,
        action: str,
        resource: str,
        session_id: str | None,
        attributes: dict[str, Any],
        reason: str,
    ) -> str: ...


class TaskDesk:
    def __init__(
        self,
        store: TaskStore,
        directory: Directory,
        calls: CallRecorder,
        audit: AuditLog,
        alerts: AlertStore,
        marks: SessionMarks,
    ) -> None:
        self._store = store
        self._directory = directory
        self._calls = calls
        self._audit = audit
        self._alerts = alerts
        self._marks = marks

    async def _task_of(
        self, identity: AgentIdentity, task_id: str | None, session_id: str | None
    ) -> TaskRecord:
        if task_id:
            try:
                task = await self._store.get(task_id)
            except NotFound:
                task = None
            owned = task is not None and task.project_id == identity.project.id
            if task is None or not owned or task.agent_id not in (None, identity.agent.id):
                raise NotFound(f"agent {identity.agent.name} has no task {task_id!r}")
            return task
        found = None
        if session_id:
            found = await self._store.for_session(
                session_id, identity.agent.id, identity.project.id
            )
        found = found or await self._store.current_for_agent(identity.agent.id, identity.project.id)
        if found is None:
            raise NotFound(
                f"agent {identity.agent.name} has no open task; an operator creates one with "
                "'tether tasks create FILE --project P --agent NAME'"
            )
        return found

    async def _enter(
        self,
        credential: str | None,
        task_id: str | None,
        session_id: str | None,
        source: str,
        what: str,
        attributes: dict[str, Any],
        reason: str,
    ) -> _Call:
        """Identify the agent, find its task, and record the call in the task's session
        (refused, and raised, when that session was stopped)."""
        if not credential:
            raise AuthenticationFailed(
                "no agent key: send it as 'Authorization: Bearer tth_…'", code="missing_credentials"
            )
        identity = await self._directory.identify_agent(credential)
        task = await self._task_of(identity, task_id, session_id)
        recorded_in = await self._calls.record_call(
            source=source,
            credential=credential,
            action=f"task:{what}",
            resource=f"task:{task.id}",
            session_id=session_id or task.session_id,
            attributes={"task": task.id, **attributes},
            reason=reason,
        )
        if task.session_id is None:
            await self._store.attach(task.id, recorded_in)
        return _Call(identity, task, recorded_in)

    async def get_task(
        self, credential: str | None, task_id: str | None, session_id: str | None, source: str
    ) -> dict[str, Any]:
        call = await self._enter(
            credential, task_id, session_id, source, "read", {}, "read the task"
        )
        return view_dict(await load_view(self._store, await self._store.get(call.task.id)))

    async def checkpoint(
        self,
        credential: str | None,
        task_id: str | None,
        session_id: str | None,
        source: str,
        checkpoint: Checkpoint,
    ) -> dict[str, Any]:
        body = checkpoint.body()
        call = await self._enter(
            credential,
            task_id,
            session_id,
            source,
            "checkpoint",
            {"checkpoint": redacted_summary(body)},
            f"checkpoint: done: {body['done'][:200]}",
        )
        record = await self._store.add_checkpoint(
            call.task.id, call.session_id, call.identity.agent.id, body
        )
        self._marks.checkpointed(call.task.id)
        return {"id": record.id, "task": call.task.id, "at": iso_ms(record.created_at), **body}

    async def next_batch(
        self, credential: str | None, task_id: str | None, session_id: str | None, source: str
    ) -> dict[str, Any]:
        call = await self._enter(
            credential, task_id, session_id, source, "next_batch", {}, "asked for the next batch"
        )
        definition = TaskDefinition.from_json(call.task.definition)
        if not call.task.batch_count:
            raise NotFound(f"task {call.task.id} has no work items; it is not done in batches")
        task, batch = await self._store.claim_next(
            call.task.id, call.session_id, definition.claim_minutes * 60_000
        )
        if batch is None:
            self._marks.task_changed(task.id)
            return {
                "task": task.id,
                "state": task.state,
                "batch": None,
                "message": "every batch is verified: the task is complete"
                if task.state == "completed"
                else "every remaining batch is held by another session; try again later",
            }
        return _batch_answer(task, definition, batch)

    async def complete_batch(
        self,
        credential: str | None,
        task_id: str | None,
        session_id: str | None,
        source: str,
        completion: Completion,
    ) -> dict[str, Any]:
        call = await self._enter(
            credential,
            task_id,
            session_id,
            source,
            "complete_batch",
            {
                "batch": completion.batch,
                "passed": completion.passed,
                "output": redact_text(completion.output[:500]),
            },
            f"batch {completion.batch} reported {'verified' if completion.passed else 'FAILED'}",
        )
        verification = {"passed": completion.passed, "output": redact_text(completion.output)}
        task, batch = await self._store.complete(
            call.task.id,
            completion.batch,
            call.session_id,
            completion.passed,
            completion.results,
            verification,
        )
        self._marks.task_changed(task.id)
        if not completion.passed:
            await self._needs_attention(call, task, batch, completion.output)
        definition = TaskDefinition.from_json(task.definition)
        return {
            "task": task.id,
            "batch": batch.number,
            "state": batch.state,
            "task_state": task.state,
            "message": _after(task, completion.passed),
            "items": len(definition.batch_items(batch.number)),
        }

    async def _needs_attention(
        self, call: _Call, task: TaskRecord, batch: BatchRecord, output: str
    ) -> None:
        identity = call.identity
        reason = f"verification of batch {batch.number} failed: {redact_text(output[:300])}"
        await self._audit.record(
            AuditEvent(
                actor="tether",
                source="tasks",
                action="task:needs_attention",
                resource=f"task:{task.id}",
                result="stopped",
                reason=reason,
                code="verification_failed",
                project_id=identity.project.id,
                agent_id=identity.agent.id,
                agent_name=identity.agent.name,
                session_id=call.session_id,
                attributes={"task": task.id, "batch": batch.number},
            )
        )
        summary = (
            f"task {task.id} ({task.name}) needs attention: {reason} (agent "
            f"{identity.agent.name}, project {identity.project.name}); no further batch is "
            f"handed out until `tether tasks resume {task.id}`"
        )
        try:
            await self._alerts.notify(
                identity.project.id,
                "task.needs_attention",
                {
                    "summary": summary,
                    "task": task.id,
                    "name": task.name,
                    "batch": batch.number,
                    "project": identity.project.name,
                    "agent": identity.agent.name,
                    "session": call.session_id,
                    "reason": reason,
                },
            )
        except TetherError as exc:
            log.warning("task alert for %s not queued: %s", task.id, exc.message)


def _after(task: TaskRecord, passed: bool) -> str:
    if not passed:
        return (
            "verification failed: the task is stopped until an operator resumes it; "
            "do not continue the work"
        )
    if task.state == "completed":
        return "verified; every batch is verified: the task is complete"
    return "verified; call next_batch for more"


def _batch_answer(
    task: TaskRecord, definition: TaskDefinition, batch: BatchRecord
) -> dict[str, Any]:
    verification = definition.verification
    return {
        "task": task.id,
        "state": task.state,
        "batch": batch.number,
        "of": task.batch_count,
        "items": definition.batch_items(batch.number),
        "claimed_until": iso_ms(batch.claimed_until),
        "verification": verification.model_dump(exclude_none=True) if verification else None,
        "message": "work on exactly these items, run the verification, then call "
        "complete_batch with this batch number and the outcome",
    }
