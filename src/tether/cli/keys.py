"""``tether keys``."""

from __future__ import annotations

import typer

from tether.cli.client import CliError
from tether.cli.context import JsonOption, client, reports_errors
from tether.cli.durations import parse_duration
from tether.cli.output import console, print_json, print_records

app = typer.Typer(
    help="Agent keys: rotate one agent's key without touching the others.", no_args_is_help=True
)


@app.command("rotate")
@reports_errors
def rotate(
    ctx: typer.Context,
    agent: str,
    grace: str = typer.Option("0", "--grace", help="How long the old key keeps working, e.g. 10m."),
    as_json: bool = JsonOption,
) -> None:
    """Issue a new key for AGENT; the old one stops after --grace (default: now)."""
    try:
        seconds = parse_duration(grace)
    except ValueError as exc:
        raise CliError(f"--grace: {exc}") from None
    issued = client(ctx).call("POST", f"/agents/{agent}/keys/rotate", {"grace_seconds": seconds})
    if as_json:
        print_json(issued)
        return
    console.print(
        f"new key for {agent} (shown once): [bold]{issued['key']}[/bold]", highlight=False
    )
    console.print(
        f"previous keys stop working at {issued['previous_keys_expire_at']}", highlight=False
    )


@app.command("list")
@reports_errors
def list_(ctx: typer.Context, agent: str, as_json: bool = JsonOption) -> None:
    """List AGENT's keys (prefixes and dates only)."""
    keys = client(ctx).call("GET", f"/agents/{agent}/keys")
    print_records(
        keys,
        ["prefix", "created_at", "last_used_at", "expires_at", "revoked_at", "id"],
        as_json,
        f"keys of {agent}",
    )
