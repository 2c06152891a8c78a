"""``tether sessions``."""

from __future__ import annotations

from typing import Optional

import typer

from tether.cli.context import JsonOption, client, reports_errors
from tether.cli.output import print_records

app = typer.Typer(help="Agent sessions.", no_args_is_help=True)
COLUMNS = ["id", "agent", "project", "state", "request_count", "last_activity_at"]


@app.command("list")
@reports_errors
def list_(
    ctx: typer.Context,
    project: Optional[str] = typer.Option(None, "--project", "-p"),  # noqa: UP045
    agent: Optional[str] = typer.Option(None, "--agent", "-a"),  # noqa: UP045
    state: Optional[str] = typer.Option(None, "--state"),  # noqa: UP045
    as_json: bool = JsonOption,
) -> None:
    """List sessions, most recently active first."""
    params = {"project": project, "agent": agent, "state": state}
    print_records(client(ctx).call("GET", "/sessions", params=params), COLUMNS, as_json, "sessions")


@app.command("show")
@reports_errors
def show(ctx: typer.Context, session_id: str, as_json: bool = JsonOption) -> None:
    """Show one session."""
    print_records(client(ctx).call("GET", f"/sessions/{session_id}"), COLUMNS + ["created_at"], as_json)
