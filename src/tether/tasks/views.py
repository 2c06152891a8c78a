"""A task as the agent sees it: the block to inject and the dictionary tools answer."""

from __future__ import annotations

from typing import Any

from tether.clock import iso_ms
from tether.store.tasks import TaskRecord, TaskStore
from tether.tasks.block import TaskView, render_block
from tether.tasks.definition import TaskDefinition

__all__ = ["load_view", "view_dict"]


async def load_view(store: TaskStore, task: TaskRecord) -> TaskView:
    checkpoints = await store.checkpoints(task.id, limit=1)
    batches = await store.batches(task.id) if task.batch_count else []
    return TaskView(
        task,
        TaskDefinition.from_json(task.definition),
        checkpoints[0] if checkpoints else None,
        batches,
    )


def view_dict(view: TaskView) -> dict[str, Any]:
    d, task = view.definition, view.task
    verified = [b.number for b in view.batches if b.state == "verified"]
    return {
        "id": task.id,
        "state": task.state,
        "state_reason": task.state_reason,
        "session_id": task.session_id,
        "definition": d.model_dump(exclude_none=True, exclude={"items"}),
        "items": len(d.items),
        "batches": task.batch_count,
        "batches_verified": len(verified),
        "items_done": sum(len(d.batch_items(n)) for n in verified),
        "latest_checkpoint": None
        if view.checkpoint is None
        else {"at": iso_ms(view.checkpoint.created_at), **view.checkpoint.body},
        "block": render_block(view),
    }
