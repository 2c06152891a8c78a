"""``tether projects``."""

from __future__ import annotations

import typer

from tether.cli.context import JsonOption, client, reports_errors
from tether.cli.output import print_records

app = typer.Typer(
    help="Projects: own agents, upstream credentials and budgets.", no_args_is_help=True
)
COLUMNS = ["name", "paused", "created_at", "id"]


@app.command("create")
@reports_errors
def create(ctx: typer.Context, name: str, as_json: bool = JsonOption) -> None:
    """Create a project."""
    print_records(client(ctx).call("POST", "/projects", {"name": name}), COLUMNS, as_json)


@app.command("list")
@reports_errors
def list_(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """List projects."""
    print_records(client(ctx).call("GET", "/projects"), COLUMNS, as_json, "projects")


@app.command("show")
@reports_errors
def show(ctx: typer.Context, name: str, as_json: bool = JsonOption) -> None:
    """Show one project."""
    print_records(client(ctx).call("GET", f"/projects/{name}"), COLUMNS, as_json)
