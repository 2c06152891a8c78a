"""``tether audit``."""

from __future__ import annotations

import typer

from tether.cli.context import AgentFilter, JsonOption, ProjectFilter, client, reports_errors
from tether.cli.output import print_records

app = typer.Typer(help="The audit trail.", no_args_is_help=True)
COLUMNS = ["ts", "actor", "session_id", "action", "resource", "result", "code", "reason"]


@app.command("query")
@reports_errors
def query(
    ctx: typer.Context,
    agent: str | None = AgentFilter,
    session: str | None = typer.Option(None, "--session", "-s"),
    project: str | None = ProjectFilter,
    since: str | None = typer.Option(None, "--since", help="ISO time, e.g. 2026-11-25T14:00:00Z"),
    until: str | None = typer.Option(None, "--until"),
    action: str | None = typer.Option(None, "--action", help="Action prefix, e.g. admin:"),
    limit: int = typer.Option(500, "--limit"),
    as_json: bool = JsonOption,
) -> None:
    """Events in time order, filtered by agent, session, project and time window."""
    params = {
        "agent": agent,
        "session": session,
        "project": project,
        "since": since,
        "until": until,
        "action": action,
        "limit": str(limit),
    }
    print_records(client(ctx).call("GET", "/audit", params=params), COLUMNS, as_json, "audit")
