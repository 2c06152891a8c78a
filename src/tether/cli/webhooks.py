"""``tether webhooks``."""

from __future__ import annotations

import sys

import typer

from tether.cli.context import (
    JsonOption,
    ProjectArgument,
    ProjectOption,
    client,
    project_and,
    reports_errors,
    the_project,
)
from tether.cli.output import print_done, print_records

app = typer.Typer(help="Where a project's alerts go.", no_args_is_help=True)
COLUMNS = ["id", "project", "kind", "url", "signed"]


@app.command("add")
@reports_errors
def add(
    ctx: typer.Context,
    first: str = typer.Argument(..., metavar="[PROJECT] URL"),
    second: str | None = typer.Argument(None, hidden=True),
    project_option: str | None = ProjectOption,
    kind: str = typer.Option("slack", "--kind", help="slack or generic (HMAC-signed)"),
    secret_stdin: bool = typer.Option(
        False, "--secret-stdin", help="Read the signing secret from stdin."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Send PROJECT's alerts (budgets, guards, approvals) to URL."""
    project, url = project_and(first, second, project_option)
    body = {"kind": kind, "url": url}
    if secret_stdin:
        body["secret"] = sys.stdin.readline().strip()
    print_records(client(ctx).call("POST", f"/projects/{project}/webhooks", body), COLUMNS, as_json)


@app.command("list")
@reports_errors
def list_(
    ctx: typer.Context,
    project: str | None = ProjectArgument,
    project_option: str | None = ProjectOption,
    as_json: bool = JsonOption,
) -> None:
    """List PROJECT's webhooks."""
    project = the_project(project, project_option)
    print_records(client(ctx).call("GET", f"/projects/{project}/webhooks"), COLUMNS, as_json)


@app.command("delete")
@reports_errors
def delete(
    ctx: typer.Context,
    first: str = typer.Argument(..., metavar="[PROJECT] WEBHOOK_ID"),
    second: str | None = typer.Argument(None, hidden=True),
    project_option: str | None = ProjectOption,
    as_json: bool = JsonOption,
) -> None:
    """Remove a webhook."""
    project, webhook_id = project_and(first, second, project_option)
    client(ctx).call("DELETE", f"/projects/{project}/webhooks/{webhook_id}")
    print_done({"removed": "webhook", "id": webhook_id}, f"removed webhook {webhook_id}", as_json)


DELIVERY_COLUMNS = ["id", "webhook_id", "event", "state", "attempts", "created_at", "last_error"]


@app.command("deliveries")
@reports_errors
def deliveries(
    ctx: typer.Context,
    project: str | None = ProjectArgument,
    project_option: str | None = ProjectOption,
    failed: bool = typer.Option(
        False, "--failed", help="Only deliveries given up on (refused by the receiver)."
    ),
    limit: int = typer.Option(100, "--limit", help="At most this many, newest first."),
    as_json: bool = JsonOption,
) -> None:
    """PROJECT's alert deliveries: delivered, retrying, or failed (not retried)."""
    project = the_project(project, project_option)
    params = {"state": "failed" if failed else None, "limit": str(limit)}
    found = client(ctx).call("GET", f"/projects/{project}/webhook-deliveries", params=params)
    print_records(found, DELIVERY_COLUMNS, as_json, f"{project}: deliveries")
