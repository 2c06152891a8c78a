"""``tether tokens``."""

from __future__ import annotations

import typer

from tether.cli.context import JsonOption, client, reports_errors
from tether.cli.output import console, print_done, print_json, print_records

app = typer.Typer(help="Admin tokens (admin or read-only viewer).", no_args_is_help=True)
COLUMNS = ["name", "role", "prefix", "created_at", "revoked_at"]


@app.command("create")
@reports_errors
def create(
    ctx: typer.Context,
    name: str,
    role: str = typer.Option("viewer", "--role", help="admin or viewer"),
    as_json: bool = JsonOption,
) -> None:
    """Create an admin token; its secret is printed once."""
    created = client(ctx).call("POST", "/tokens", {"name": name, "role": role})
    if as_json:
        print_json(created)
        return
    print_records(created["token"], COLUMNS, False)
    console.print(f"token (shown once): [bold]{created['secret']}[/bold]", highlight=False)


@app.command("list")
@reports_errors
def list_(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """List admin tokens."""
    print_records(client(ctx).call("GET", "/tokens"), COLUMNS, as_json, "admin tokens")


@app.command("revoke")
@reports_errors
def revoke(ctx: typer.Context, name: str, as_json: bool = JsonOption) -> None:
    """Revoke an admin token."""
    client(ctx).call("DELETE", f"/tokens/{name}")
    print_done({"revoked": "admin token", "name": name}, f"revoked admin token {name}", as_json)
