"""``tether sessions``."""

from __future__ import annotations

from urllib.parse import quote

import typer

from tether.cli.context import AgentFilter, JsonOption, ProjectFilter, client, reports_errors
from tether.cli.output import print_more, print_records

app = typer.Typer(help="Agent sessions.", no_args_is_help=True)
COLUMNS = ["id", "agent", "project", "state", "request_count", "cost_usd", "last_activity_at"]


@app.command("list")
@reports_errors
def list_(
    ctx: typer.Context,
    project: str | None = ProjectFilter,
    agent: str | None = AgentFilter,
    state: str | None = typer.Option(
        None, "--state", help="Only sessions in this state (active, paused, terminated, …)."
    ),
    limit: int = typer.Option(200, "--limit", help="At most this many (1 to 1000)."),
    before: str | None = typer.Option(
        None, "--before", help="The cursor a previous page printed: the page after it."
    ),
    as_json: bool = JsonOption,
) -> None:
    """List sessions, most recently active first; says so when more are available."""
    params = {
        "project": project,
        "agent": agent,
        "state": state,
        "limit": str(limit),
        "before": before,
    }
    found, next_page = client(ctx).call_page("GET", "/sessions", params=params)
    print_records(found, COLUMNS, as_json, "sessions")
    print_more(next_page, "--before")


@app.command("kill")
@reports_errors
def kill(
    ctx: typer.Context,
    session_id: str,
    reason: str = typer.Option("", "--reason", "-r", help="Shown to the agent's user."),
    as_json: bool = JsonOption,
) -> None:
    """Terminate a session: its running stream is cut and its next request refused."""
    killed = client(ctx).call(
        "POST", f"/sessions/{quote(session_id, safe='')}/kill", {"reason": reason}
    )
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
    resumed = client(ctx).call(
        "POST", f"/sessions/{quote(session_id, safe='')}/resume", {"reason": reason}
    )
    print_records(resumed, [*COLUMNS, "state_by"], as_json)


@app.command("show")
@reports_errors
def show(ctx: typer.Context, session_id: str, as_json: bool = JsonOption) -> None:
    """Show one session."""
    print_records(
        client(ctx).call("GET", f"/sessions/{quote(session_id, safe='')}"),
        [*COLUMNS, "created_at"],
        as_json,
    )
