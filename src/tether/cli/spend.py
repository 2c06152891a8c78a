"""``tether spend``."""

from __future__ import annotations

import typer

from tether.cli.context import AgentFilter, JsonOption, ProjectFilter, client, reports_errors
from tether.cli.output import print_records
from tether.cli.times import SinceOption, UntilOption, as_day

COLUMNS = {
    "project": ["project", "requests", "input_tokens", "output_tokens", "cost_usd"],
    "agent": ["project", "agent", "requests", "input_tokens", "output_tokens", "cost_usd"],
    "session": ["session", "agent", "requests", "input_tokens", "output_tokens", "cost_usd"],
    "day": ["day", "requests", "input_tokens", "output_tokens", "cost_usd"],
}


@reports_errors
def spend(
    ctx: typer.Context,
    by: str = typer.Option("project", "--by", help="project, agent, session or day"),
    project: str | None = ProjectFilter,
    agent: str | None = AgentFilter,
    since: str | None = SinceOption,
    until: str | None = UntilOption,
    as_json: bool = JsonOption,
) -> None:
    """Report spend by project, agent, session or day."""
    params = {
        "by": by,
        "project": project,
        "agent": agent,
        "since": as_day("--since", since),
        "until": as_day("--until", until),
    }
    rows = client(ctx).call("GET", "/spend", params=params)
    print_records(rows, COLUMNS.get(by, COLUMNS["project"]), as_json, f"spend by {by}")
