"""The task block put back into an agent's context: clearly marked, at most 10,000
characters (Claude Code's limit for ``additionalContext``), and the same text for the same
task state, so a block appended to ``system`` keeps prompt caching hitting."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tether.clock import iso_ms
from tether.store.tasks import BatchRecord, CheckpointRecord, TaskRecord
from tether.tasks.definition import TaskDefinition

__all__ = ["BEGIN", "END", "MAX_BLOCK_CHARS", "TaskView", "reminder", "render_block"]

MAX_BLOCK_CHARS = 10_000
BEGIN = "<<<tether:task"
END = "tether:task>>>"
FIELD_CHARS = 2_000


@dataclass(frozen=True, slots=True)
class TaskView:
    """What the block shows: the task, its latest checkpoint, how far its batches are."""

    task: TaskRecord
    definition: TaskDefinition
    checkpoint: CheckpointRecord | None
    batches: Sequence[BatchRecord]


def _cut(text: str, limit: int = FIELD_CHARS) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _list(title: str, entries: Sequence[str]) -> list[str]:
    if not entries:
        return []
    shown = [f"- {_cut(e, 500)}" for e in entries[:30]]
    if len(entries) > 30:
        shown.append(f"- … and {len(entries) - 30} more (get_task shows all)")
    return [f"{title}:", *shown]


def _work(view: TaskView) -> list[str]:
    d = view.definition
    if not view.task.batch_count:
        return []
    verified = sum(1 for b in view.batches if b.state == "verified")
    items_done = sum(len(d.batch_items(b.number)) for b in view.batches if b.state == "verified")
    lines = [
        f"Work: {len(d.items)} items in {view.task.batch_count} batches of {d.batch_size}; "
        f"{verified} batches ({items_done} items) verified.",
        "Take work only with the next_batch tool (tether MCP server), and report each batch "
        "with complete_batch including the verification outcome. Do not work on items "
        "outside the batch you hold.",
    ]
    if d.verification is not None and d.verification.command:
        lines.append(f"Verification command for each batch: {_cut(d.verification.command, 500)}")
    if d.verification is not None and d.verification.rule:
        lines.append(f"Verification rule for each batch: {_cut(d.verification.rule, 500)}")
    return lines


def _checkpoint(checkpoint: CheckpointRecord | None) -> list[str]:
    if checkpoint is None:
        return ["Latest checkpoint: none yet. Write one (checkpoint tool) when you finish a step."]
    body = checkpoint.body
    lines = [f"Latest checkpoint ({iso_ms(checkpoint.created_at)}):"]
    for key, title in (("done", "Done"), ("next", "Next"), ("notes", "Notes")):
        if body.get(key):
            lines.append(f"{title}: {_cut(str(body[key]))}")
    lines += _list("Decisions taken", [str(d) for d in body.get("decisions") or []])
    return lines


def render_block(view: TaskView, extra: str | None = None) -> str:
    """The block; ``extra`` (a drift reminder) goes at its top."""
    task, d = view.task, view.definition
    lines = [
        f"{BEGIN} id={task.id} state={task.state}",
        "The task below is held by tether, outside your context: it is authoritative and "
        "survives compaction. Re-read it before going on.",
    ]
    if extra:
        lines.append(f"REMINDER: {extra}")
    lines += [f"Task: {_cut(d.name, 200)}", f"Goal: {_cut(d.goal, 4000)}"]
    lines += _list("Constraints (never break these)", d.constraints)
    lines += _list("Acceptance checks", d.acceptance)
    lines += _work(view)
    if task.state == "needs_attention":
        lines.append(
            f"STOPPED: {task.state_reason}. Do not continue the work; wait for an operator."
        )
    lines += _checkpoint(view.checkpoint)
    lines.append(END)
    text = "\n".join(lines)
    if len(text) > MAX_BLOCK_CHARS:
        tail = f"\n… (cut to fit; call get_task for the whole task)\n{END}"
        text = text[: MAX_BLOCK_CHARS - len(tail)] + tail
    return text


def reminder(warnings: Sequence[str]) -> str:
    return (
        "; ".join(warnings) + ". Write a checkpoint now (checkpoint tool or "
        "POST /v1/tasks/{id}/checkpoints): what is done, what is next, decisions taken."
    )
