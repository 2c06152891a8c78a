"""``tether sessions``."""

from __future__ import annotations

import typer

from tether.cli.context import JsonOption, client, reports_errors
from tether.cli.output import print_records

app = typer.Typer(help="Agent sessions.", no_args_is_help=True)
COLUMNS = ["id", "agent", "project", "state", "request_count", "last_activity_at"]


@app.command("list")
@reports_errors
def list_(
    ctx: typer.Context,
    project: str | None = typer.Option(None, "--project", "-p"),
    agent: str | None = typer.Option(None, "--agent", "-a"),
    state: str | None = typer.Option(None, "--state"),
    as_json: bool = JsonOption,
) -> None:
    """List sessions, most recently active first."""
    params = {"project": project, "agent": agent, "state": state}
    print_records(client(ctx).call("GET", "/sessions", params=params), COLUMNS, as_json, "sessions")


@app.command("show")
@reports_errors
def show(ctx: typer.Context, session_id: str, as_json: bool = JsonOption) -> None:
    """Show one session."""
    print_records(
        client(ctx).call("GET", f"/sessions/{session_id}"), [*COLUMNS, "created_at"], as_json
    )
