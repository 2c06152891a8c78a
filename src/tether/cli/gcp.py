"""``tether gcp``: the Google service account tether holds for a project's Vertex calls."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer

from tether.cli.client import CliError
from tether.cli.context import JsonOption, client, reports_errors
from tether.cli.output import print_records

app = typer.Typer(
    help="Claude on Vertex AI: the project's Google service account, held by tether only.",
    no_args_is_help=True,
)
COLUMNS = ["project", "configured", "gcp_project", "client_email", "endpoint_url"]


@app.command("set-credentials")
@reports_errors
def set_credentials(
    ctx: typer.Context,
    project: str,
    endpoint_url: str | None = typer.Option(
        None, "--endpoint-url", help="Send Vertex calls here instead of Google (e.g. a fake)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Store PROJECT's service account key (the JSON key file, on stdin)."""
    text = sys.stdin.read()
    try:
        key = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"stdin is not a JSON key file: {exc.msg} (line {exc.lineno})") from None
    body: dict[str, Any] = {"service_account": key}
    if endpoint_url:
        body["endpoint_url"] = endpoint_url
    print_records(client(ctx).call("PUT", f"/projects/{project}/gcp", body), COLUMNS, as_json)


@app.command("show")
@reports_errors
def show(ctx: typer.Context, project: str, as_json: bool = JsonOption) -> None:
    """PROJECT's Vertex settings (never the key)."""
    print_records(client(ctx).call("GET", f"/projects/{project}/gcp"), COLUMNS, as_json)
