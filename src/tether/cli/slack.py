"""``tether slack``: Approve / Deny in Slack — the app's signing secret and who may click."""

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
from tether.cli.output import print_done, print_records

app = typer.Typer(
    help="Approve / Deny buttons in Slack: the app's signing secret, who may click them.",
    no_args_is_help=True,
)
SECRET_COLUMNS = ["set", "updated_at", "updated_by"]
USER_COLUMNS = ["project", "team_id", "user_id", "operator", "created_at", "created_by"]
TeamOption = typer.Option(..., "--team", "-t", help="The Slack workspace id (T…).")


def _read_secret() -> str:
    if sys.stdin.isatty():
        return str(typer.prompt("signing secret", hide_input=True))
    return sys.stdin.readline().strip()


@app.command("set-signing-secret")
@reports_errors
def set_signing_secret(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Store the Slack app's signing secret, read from stdin (or a hidden prompt); it is
    sealed and never shown again."""
    secret = _read_secret()
    if not secret:
        raise CliError("no signing secret given on stdin")
    info = client(ctx).call("PUT", "/slack/signing-secret", {"secret": secret})
    print_records(info, SECRET_COLUMNS, as_json)


@app.command("status")
@reports_errors
def status(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Whether a signing secret is stored, when and by whom (never the secret)."""
    print_records(client(ctx).call("GET", "/slack/signing-secret"), SECRET_COLUMNS, as_json)


@app.command("map-user")
@reports_errors
def map_user(
    ctx: typer.Context,
    user_id: str = typer.Argument(..., help="The Slack user id (U…), from the user's profile."),
    operator: str = typer.Argument(..., help="The admin token (by name) the user decides as."),
    team: str = TeamOption,
    project_option: str | None = ProjectOption,
    as_json: bool = JsonOption,
) -> None:
    """Let Slack user USER_ID decide PROJECT's approvals from Slack, as OPERATOR."""
    project = the_project(None, project_option)
    body = {"team_id": team, "user_id": user_id, "operator": operator}
    found = client(ctx).call("POST", f"/projects/{project}/slack-users", body)
    print_records(found, USER_COLUMNS, as_json)


@app.command("users")
@reports_errors
def users(
    ctx: typer.Context,
    project: str | None = ProjectArgument,
    project_option: str | None = ProjectOption,
    as_json: bool = JsonOption,
) -> None:
    """The Slack users who may decide PROJECT's approvals, and as whom."""
    project = the_project(project, project_option)
    found = client(ctx).call("GET", f"/projects/{project}/slack-users")
    print_records(found, USER_COLUMNS, as_json, f"{project}: Slack approvers")


@app.command("unmap-user")
@reports_errors
def unmap_user(
    ctx: typer.Context,
    user_id: str = typer.Argument(..., help="The Slack user id (U…)."),
    team: str = TeamOption,
    project_option: str | None = ProjectOption,
    as_json: bool = JsonOption,
) -> None:
    """Stop Slack user USER_ID deciding PROJECT's approvals."""
    project = the_project(None, project_option)
    client(ctx).call("DELETE", f"/projects/{project}/slack-users/{team}/{user_id}")
    print_done(
        {"removed": "slack user", "user_id": user_id, "team_id": team, "project": project},
        f"Slack user {user_id} no longer decides {project}'s approvals",
        as_json,
    )
