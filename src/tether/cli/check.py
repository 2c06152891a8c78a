"""``tether check``: readiness of each project; exit status 1 on any fail."""

from __future__ import annotations

import typer

from tether.cli.context import JsonOption, ProjectFilter, client, reports_errors
from tether.cli.output import print_json, print_table

COLUMNS = ["check", "status", "evidence", "fix"]


@reports_errors
def check(
    ctx: typer.Context, project: str | None = ProjectFilter, as_json: bool = JsonOption
) -> None:
    """Readiness: per project, each check pass / warn / fail with evidence and the command
    that fixes it. Exit status 1 on any fail, so a deploy pipeline can gate on it."""
    report = client(ctx).call("GET", "/readiness", params={"project": project})
    if as_json:
        print_json(report)
    else:
        for entry in report:
            print_table(entry["checks"], COLUMNS, f"{entry['project']}: {entry['status']}")
    if any(entry["status"] == "fail" for entry in report):
        raise typer.Exit(1)
