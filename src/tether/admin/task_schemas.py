"""Bodies of the admin API's task routes."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tether.admin.schemas import Strict
from tether.clock import iso_ms
from tether.store.tasks import CheckpointRecord, TaskRecord
from tether.tasks.settings import DriftSettings

__all__ = [
    "CheckpointOut",
    "DriftOut",
    "DriftUpdate",
    "TaskCreate",
    "TaskDetailOut",
    "TaskOut",
    "TaskStateChange",
]

OFF = "; null turns it off"


class TaskCreate(Strict):
    project: str = Field(min_length=1, max_length=64)
    agent: str | None = Field(
        None, min_length=1, max_length=64, description="only this agent's next session"
    )
    session: str | None = Field(
        None, min_length=1, max_length=128, description="attach to this session now"
    )
    source: str = Field(
        min_length=1,
        description="the task file (YAML or JSON): name, goal, constraints, acceptance, "
        "items, batch_size, verification {command | rule}, claim_minutes",
    )


class TaskStateChange(Strict):
    reason: str = Field("", max_length=2000)


class TaskOut(BaseModel):
    id: str
    name: str
    project: str | None
    agent: str | None
    session_id: str | None
    state: str
    state_by: str | None
    state_reason: str | None
    batches: int
    created_at: str | None
    created_by: str
    updated_at: str | None

    @classmethod
    def of(cls, task: TaskRecord, project: str | None, agent: str | None) -> TaskOut:
        return cls(
            id=task.id,
            name=task.name,
            project=project,
            agent=agent,
            session_id=task.session_id,
            state=task.state,
            state_by=task.state_by,
            state_reason=task.state_reason,
            batches=task.batch_count,
            created_at=iso_ms(task.created_at),
            created_by=task.created_by,
            updated_at=iso_ms(task.updated_at),
        )


class CheckpointOut(BaseModel):
    id: str
    at: str | None
    session_id: str | None
    done: str
    next: str
    decisions: list[str]
    notes: str

    @classmethod
    def of(cls, record: CheckpointRecord) -> CheckpointOut:
        body = record.body
        return cls(
            id=record.id,
            at=iso_ms(record.created_at),
            session_id=record.session_id,
            done=str(body.get("done", "")),
            next=str(body.get("next", "")),
            decisions=[str(d) for d in body.get("decisions") or []],
            notes=str(body.get("notes", "")),
        )


class TaskDetailOut(TaskOut):
    definition: dict[str, Any]
    items: int
    batches_verified: int
    batches_failed: list[int]
    batches_claimed: list[int]
    items_done: int
    checkpoints: list[CheckpointOut]


class DriftOut(BaseModel):
    project: str
    reinject_every_batches: int | None
    reinject_after_turns: int | None
    session_minutes: int | None
    context_fill_percent: int | None
    turns_without_checkpoint: int | None
    remind: bool
    system_prompt: bool

    @classmethod
    def of(cls, project: str, settings: DriftSettings) -> DriftOut:
        return cls(project=project, **asdict(settings))


class DriftUpdate(Strict):
    """Only the fields sent change."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    reinject_every_batches: int | None = Field(
        None, ge=1, le=100_000, description="re-inject the task every this many tool batches" + OFF
    )
    reinject_after_turns: int | None = Field(
        None, ge=1, le=100_000, description="… and after this many turns without a checkpoint" + OFF
    )
    session_minutes: int | None = Field(
        None, ge=1, le=100_000, description="warn when a session has run this long" + OFF
    )
    context_fill_percent: int | None = Field(
        None, ge=1, le=100, description="warn when the context window is this full" + OFF
    )
    turns_without_checkpoint: int | None = Field(
        None, ge=1, le=100_000, description="warn after this many turns without a checkpoint" + OFF
    )
    remind: bool | None = Field(None, description="inject a reminder to checkpoint on a warning")
    system_prompt: bool | None = Field(
        None, description="append the task block to each Messages request's system (opt-in)"
    )
