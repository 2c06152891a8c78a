"""``tether sessions``."""

from __future__ import annotations

import typer

from tether.cli.context import AgentFilter, JsonOption, ProjectFilter, client, reports_errors
from tether.cli.output import print_records

app = typer.Typer(help="Agent sessions.", no_args_is_help=True)
COLUMNS = ["id", "agent", "project", "state", "request_count", "cost_usd", "last_activity_at"]


@app.command("list")
@reports_errors
def list_(
    ctx: typer.Context,
    project: str | None = ProjectFilter,
    agent: str | None = AgentFilter,
    state: str | None = typer.Option(None, "--state"),
    as_json: bool = JsonOption,
) -> None:
    """List sessions, most recently active first."""
    params = {"project": project, "agent": agent, "state": state}
    print_records(client(ctx).call("GET", "/sessions", params=params), COLUMNS, as_json, "sessions")


@app.command("kill")
@reports_errors
def kill(
    ctx: typer.Context,
    session_id: str,
    reason: str = typer.Option("", "--reason", "-r", help="Shown to the agent's user."),
    as_json: bool = JsonOption,
) -> None:
    """Terminate a session: its running stream is cut and its next request refused."""
    killed = client(ctx).call("POST", f"/sessions/{session_id}/kill", {"reason": reason})
    print_records(killed, [*COLUMNS, "state_by"], as_json)


@app.command("resume")
@reports_errors
def resume(
    ctx: typer.Context,
    session_id: str,
    reason: str = typer.Option("", "--reason", "-r", help="Why it may go on (audited)."),
    as_json: bool = JsonOption,
) -> None:
    """Resume a session a guard paused."""
    resumed = client(ctx).call("POST", f"/sessions/{session_id}/resume", {"reason": reason})
    print_records(resumed, [*COLUMNS, "state_by"], as_json)


@app.command("show")
@reports_errors
def show(ctx: typer.Context, session_id: str, as_json: bool = JsonOption) -> None:
    """Show one session."""
    print_records(
        client(ctx).call("GET", f"/sessions/{session_id}"), [*COLUMNS, "created_at"], as_json
    )
