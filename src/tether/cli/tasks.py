"""``tether tasks``: long tasks kept by tether (definitions, batches, checkpoints)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from tether.cli.client import CliError
from tether.cli.context import (
    AgentFilter,
    JsonOption,
    ProjectFilter,
    ReasonOption,
    client,
    reports_errors,
)
from tether.cli.output import console, print_json, print_records

app = typer.Typer(
    help="Long tasks kept by tether: goal, constraints, batches, checkpoints.",
    no_args_is_help=True,
)
FileArgument = typer.Argument(..., help="The task file, YAML or JSON.")
ProjectOption = typer.Option(..., "--project", "-p", help="The project.")
COLUMNS = ["id", "name", "project", "agent", "session_id", "state", "batches", "created_at"]


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None


@app.command("create")
@reports_errors
def create(
    ctx: typer.Context,
    file: Path = FileArgument,
    project: str = ProjectOption,
    agent: str | None = typer.Option(
        None, "--agent", "-a", help="Only this agent (its next session takes the task)."
    ),
    session: str | None = typer.Option(None, "--session", help="Attach to this session now."),
    as_json: bool = JsonOption,
) -> None:
    """Create a task from FILE; mistakes are reported with their line."""
    body: dict[str, Any] = {"project": project, "source": _read(file)}
    if agent:
        body["agent"] = agent
    if session:
        body["session"] = session
    try:
        created = client(ctx).call("POST", "/tasks", body)
    except CliError as exc:
        raise CliError(f"{file}: {exc.message}", exc.exit_code) from None
    print_records(created, COLUMNS, as_json)


@app.command("list")
@reports_errors
def list_(
    ctx: typer.Context,
    project: str | None = ProjectFilter,
    agent: str | None = AgentFilter,
    state: str | None = typer.Option(
        None,
        "--state",
        help="Only tasks in this state (active, needs_attention, completed, cancelled).",
    ),
    as_json: bool = JsonOption,
) -> None:
    """List tasks, newest first."""
    found = client(ctx).call(
        "GET", "/tasks", params={"project": project, "agent": agent, "state": state}
    )
    print_records(found, COLUMNS, as_json, "tasks")


@app.command("show")
@reports_errors
def show(ctx: typer.Context, task_id: str, as_json: bool = JsonOption) -> None:
    """Show a task: definition, progress and its checkpoints, newest first."""
    task = client(ctx).call("GET", f"/tasks/{task_id}")
    if as_json:
        print_json(task)
        return
    print_records(task, [*COLUMNS, "state_reason"], False)
    definition = task["definition"]
    console.print(f"goal: {definition['goal']}", markup=False, soft_wrap=True)
    for title in ("constraints", "acceptance"):
        for entry in definition.get(title) or []:
            console.print(f"{title}: {entry}", markup=False, soft_wrap=True)
    if task["batches"]:
        console.print(
            f"progress: {task['batches_verified']} of {task['batches']} batches verified "
            f"({task['items_done']} of {task['items']} items); failed: "
            f"{task['batches_failed'] or 'none'}; claimed: {task['batches_claimed'] or 'none'}",
            markup=False,
        )
    if not task["checkpoints"]:
        console.print("checkpoints: none yet", markup=False)
    for checkpoint in task["checkpoints"]:
        lines = [f"checkpoint {checkpoint['at']} (session {checkpoint['session_id']})"]
        lines += [f"  {k}: {checkpoint[k]}" for k in ("done", "next", "notes") if checkpoint[k]]
        lines += [f"  decision: {d}" for d in checkpoint["decisions"]]
        console.print("\n".join(lines), markup=False, soft_wrap=True)


@app.command("cancel")
@reports_errors
def cancel(
    ctx: typer.Context, task_id: str, reason: str = ReasonOption, as_json: bool = JsonOption
) -> None:
    """Cancel a task: no more batches, no more injection."""
    print_records(
        client(ctx).call("POST", f"/tasks/{task_id}/cancel", {"reason": reason}), COLUMNS, as_json
    )


@app.command("resume")
@reports_errors
def resume(
    ctx: typer.Context, task_id: str, reason: str = ReasonOption, as_json: bool = JsonOption
) -> None:
    """Resume a task that needs attention: failed batches are handed out again."""
    print_records(
        client(ctx).call("POST", f"/tasks/{task_id}/resume", {"reason": reason}), COLUMNS, as_json
    )
