"""``tether spend``."""

from __future__ import annotations

import typer

from tether.cli.context import AgentFilter, JsonOption, ProjectFilter, client, reports_errors
from tether.cli.output import print_line, print_records
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
    admin = client(ctx)
    rows = admin.call("GET", "/spend", params=params)
    print_records(rows, COLUMNS.get(by, COLUMNS["project"]), as_json, f"spend by {by}")
    if not as_json:
        unsettled = admin.call("GET", "/reservations/unsettled", params={"project": project})
        if unsettled:
            reserved = sum(hold["reserved_usd"] for hold in unsettled)
            print_line(
                f"unsettled, not in the spend above: {len(unsettled)} reservations holding "
                f"${reserved:.4f} (a process died before settling them; "
                "'tether budgets unsettled', 'tether budgets settle')"
            )
