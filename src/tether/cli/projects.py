"""``tether projects``."""

from __future__ import annotations

import typer

from tether.cli.context import JsonOption, ReasonOption, client, reports_errors
from tether.cli.output import console, print_records, print_table

app = typer.Typer(
    help="Projects: own agents, upstream credentials and budgets.", no_args_is_help=True
)
COLUMNS = ["name", "paused", "paused_by", "upstream_base_url", "created_at"]
BUDGET_COLUMNS = ["id", "scope", "period", "limit_usd", "thresholds"]


@app.command("create")
@reports_errors
def create(
    ctx: typer.Context,
    name: str,
    default_budgets: bool = typer.Option(
        True,
        "--default-budgets/--no-default-budgets",
        help="Give it the default per-session limit and daily budget (shown below).",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Create a project; unless told otherwise it gets a per-session limit and a daily
    budget, so a runaway agent is stopped from the first day."""
    created = client(ctx).call(
        "POST", "/projects", {"name": name, "default_budgets": default_budgets}
    )
    print_records(created, COLUMNS, as_json)
    if not as_json and created["budgets"]:
        print_table(created["budgets"], BUDGET_COLUMNS, "budgets it was given")
        console.print(f"Change them with 'tether budgets set --project {name} …'.")


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


@app.command("pause")
@reports_errors
def pause(
    ctx: typer.Context, name: str, reason: str = ReasonOption, as_json: bool = JsonOption
) -> None:
    """Pause a project: every agent in it is refused and running streams are cut."""
    print_records(
        client(ctx).call("POST", f"/projects/{name}/pause", {"reason": reason}), COLUMNS, as_json
    )


@app.command("resume")
@reports_errors
def resume(
    ctx: typer.Context, name: str, reason: str = ReasonOption, as_json: bool = JsonOption
) -> None:
    """Resume a paused project."""
    print_records(
        client(ctx).call("POST", f"/projects/{name}/resume", {"reason": reason}), COLUMNS, as_json
    )


@app.command("set-upstream")
@reports_errors
def set_upstream(
    ctx: typer.Context,
    name: str,
    url: str = typer.Argument(
        ..., help="Base URL, e.g. https://api.anthropic.com; 'default' resets."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Send this project's model calls to another Anthropic-compatible base URL."""
    body = {"upstream_base_url": None if url == "default" else url}
    print_records(client(ctx).call("PATCH", f"/projects/{name}", body), COLUMNS, as_json)


APPROVAL_COLUMNS = ["name", "deletion_approval", "unknown_command", "approval_ttl_seconds"]


@app.command("set-approvals")
@reports_errors
def set_approvals(
    ctx: typer.Context,
    name: str,
    deletions: bool | None = typer.Option(
        None, "--deletions/--no-deletions", help="Every deletion waits for a human approval."
    ),
    unknown_command: str | None = typer.Option(
        None, "--unknown-command", help="Shell commands tether cannot read: deny or ask."
    ),
    ttl: int | None = typer.Option(
        None, "--ttl", help="Seconds an approval stays pending, and then usable."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Change how PROJECT asks humans: deletions, unknown commands, approval lifetime."""
    body = {
        key: value
        for key, value in {
            "deletion_approval": deletions,
            "unknown_command": unknown_command,
            "approval_ttl_seconds": ttl,
        }.items()
        if value is not None
    }
    out = client(ctx).call("PATCH", f"/projects/{name}", body)
    print_records(out, APPROVAL_COLUMNS, as_json)
