"""``tether aws``: the AWS credential broker's settings for a project."""

from __future__ import annotations

import sys
from typing import Any

import typer

from tether.cli.client import CliError
from tether.cli.context import JsonOption, client, reports_errors
from tether.cli.output import print_records

app = typer.Typer(
    help="The AWS credential broker: the project's real AWS credential, held by tether only.",
    no_args_is_help=True,
)
COLUMNS = ["project", "access_key_id", "role_arn", "endpoint_url", "region", "account_id"]


def _read_pair() -> tuple[str, str]:
    """Access key id and secret: two lines on stdin, or prompts (the secret hidden)."""
    if sys.stdin.isatty():
        return str(typer.prompt("access key id")), str(
            typer.prompt("secret access key", hide_input=True)
        )
    lines = [sys.stdin.readline().strip(), sys.stdin.readline().strip()]
    return lines[0], lines[1]


@app.command("set-credentials")
@reports_errors
def set_credentials(
    ctx: typer.Context,
    project: str,
    role_arn: str | None = typer.Option(
        None, "--role-arn", help="Assume this role per agent (session name = agent name)."
    ),
    endpoint_url: str | None = typer.Option(
        None, "--endpoint-url", help="Forward to this endpoint instead of AWS (e.g. moto)."
    ),
    region: str = typer.Option("us-east-1", "--region", help="Region for tether's own calls."),
    account_id: str | None = typer.Option(
        None, "--account-id", help="The account id in ARNs (default: asked of STS once)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Store PROJECT's AWS access key id and secret (stdin: two lines; or prompts)."""
    access_key_id, secret = _read_pair()
    if not access_key_id or not secret:
        raise CliError("give the access key id and the secret access key (two lines on stdin)")
    body: dict[str, Any] = {
        "access_key_id": access_key_id,
        "secret_access_key": secret,
        "region": region,
    }
    for name, value in (
        ("role_arn", role_arn),
        ("endpoint_url", endpoint_url),
        ("account_id", account_id),
    ):
        if value:
            body[name] = value
    print_records(client(ctx).call("PUT", f"/projects/{project}/aws", body), COLUMNS, as_json)


@app.command("show")
@reports_errors
def show(ctx: typer.Context, project: str, as_json: bool = JsonOption) -> None:
    """PROJECT's AWS broker settings (never the secret)."""
    print_records(client(ctx).call("GET", f"/projects/{project}/aws"), COLUMNS, as_json)
