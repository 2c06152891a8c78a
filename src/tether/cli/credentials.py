"""``tether credentials``."""

from __future__ import annotations

import sys

import typer

from tether.cli.client import CliError
from tether.cli.context import (
    JsonOption,
    ProjectArgument,
    ProjectOption,
    client,
    reports_errors,
    the_project,
)
from tether.cli.output import print_records

app = typer.Typer(
    help="Upstream credentials, held by tether and never by agents.", no_args_is_help=True
)
COLUMNS = ["project", "provider", "created_at", "updated_at"]


def _read_secret() -> str:
    if sys.stdin.isatty():
        return str(typer.prompt("secret", hide_input=True))
    return sys.stdin.readline().strip()


@app.command("set")
@reports_errors
def set_(
    ctx: typer.Context,
    project: str | None = ProjectArgument,
    project_option: str | None = ProjectOption,
    provider: str = typer.Option(
        "anthropic", "--provider", help="anthropic (AWS: `tether aws set-credentials`)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Store PROJECT's upstream key, read from stdin (or a hidden prompt); never echoed."""
    project = the_project(project, project_option)
    secret = _read_secret()
    if not secret:
        raise CliError("no secret given on stdin")
    info = client(ctx).call(
        "PUT", f"/projects/{project}/credentials/{provider}", {"secret": secret}
    )
    print_records(info, COLUMNS, as_json)


@app.command("list")
@reports_errors
def list_(
    ctx: typer.Context,
    project: str | None = ProjectArgument,
    project_option: str | None = ProjectOption,
    as_json: bool = JsonOption,
) -> None:
    """List which upstream credentials PROJECT has."""
    project = the_project(project, project_option)
    print_records(client(ctx).call("GET", f"/projects/{project}/credentials"), COLUMNS, as_json)
