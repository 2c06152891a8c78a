"""``tether drift``: a project's drift settings (re-injection of tasks, warnings, the
opt-in system-prompt injection)."""

from __future__ import annotations

import typer

from tether.cli.context import JsonOption, client, reports_errors
from tether.cli.guards import OFF_HELP, limit_value
from tether.cli.output import print_record

app = typer.Typer(
    help="Drift settings: when tasks are re-injected, drift warnings, system-prompt injection.",
    no_args_is_help=True,
)
COLUMNS = [
    "project",
    "reinject_every_batches",
    "reinject_after_turns",
    "session_minutes",
    "context_fill_percent",
    "turns_without_checkpoint",
    "remind",
    "system_prompt",
]
LIMITS = {
    "reinject_every_batches": "Re-inject the task every N tool batches.",
    "reinject_after_turns": "Re-inject after N turns without a checkpoint.",
    "session_minutes": "Warn when a session with a task has run N minutes.",
    "context_fill_percent": "Warn when the context window is N% full.",
    "turns_without_checkpoint": "Warn after N turns without a checkpoint.",
}


@app.command("show")
@reports_errors
def show(ctx: typer.Context, project: str, as_json: bool = JsonOption) -> None:
    """Show PROJECT's drift settings."""
    print_record(client(ctx).call("GET", f"/projects/{project}/drift"), COLUMNS, as_json)


@app.command("set")
@reports_errors
def set_(
    ctx: typer.Context,
    project: str,
    reinject_every_batches: str | None = typer.Option(
        None, "--reinject-every-batches", help=LIMITS["reinject_every_batches"] + OFF_HELP
    ),
    reinject_after_turns: str | None = typer.Option(
        None, "--reinject-after-turns", help=LIMITS["reinject_after_turns"] + OFF_HELP
    ),
    session_minutes: str | None = typer.Option(
        None, "--session-minutes", help=LIMITS["session_minutes"] + OFF_HELP
    ),
    context_fill_percent: str | None = typer.Option(
        None, "--context-fill-percent", help=LIMITS["context_fill_percent"] + OFF_HELP
    ),
    turns_without_checkpoint: str | None = typer.Option(
        None, "--turns-without-checkpoint", help=LIMITS["turns_without_checkpoint"] + OFF_HELP
    ),
    remind: bool | None = typer.Option(
        None, "--remind/--no-remind", help="Inject a reminder to checkpoint on a warning."
    ),
    system_prompt: bool | None = typer.Option(
        None,
        "--system-prompt/--no-system-prompt",
        help="Append the task block to each Messages request's system (agents without hooks).",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Change PROJECT's drift settings; options not given keep their values."""
    given = {
        "reinject_every_batches": reinject_every_batches,
        "reinject_after_turns": reinject_after_turns,
        "session_minutes": session_minutes,
        "context_fill_percent": context_fill_percent,
        "turns_without_checkpoint": turns_without_checkpoint,
    }
    limits = {k: limit_value(f"--{k.replace('_', '-')}", v) for k, v in given.items()}
    switches = {"remind": remind, "system_prompt": system_prompt}
    body = {k: v for k, v in limits.items() if v != ""} | {
        k: v for k, v in switches.items() if v is not None
    }
    print_record(client(ctx).call("PATCH", f"/projects/{project}/drift", body), COLUMNS, as_json)
