"""``tether approvals``: the queue of actions waiting for a human."""

from __future__ import annotations

import typer

from tether.cli.context import JsonOption, ProjectFilter, client, reports_errors
from tether.cli.output import print_records

app = typer.Typer(help="Approve or deny what agents asked to do.", no_args_is_help=True)
COLUMNS = ["id", "state", "agent", "action", "resource", "count", "expires_at"]
DECIDED = [
    "id",
    "state",
    "action",
    "resource",
    "max_uses",
    "decided_by",
    "decided_at",
    "expires_at",
]


@app.command("list")
@reports_errors
def list_(
    ctx: typer.Context,
    project: str | None = ProjectFilter,
    state: str | None = typer.Option(
        "pending", "--state", "-s", help="pending, approved, denied, used, expired, or all"
    ),
    as_json: bool = JsonOption,
) -> None:
    """List approvals (pending ones by default)."""
    params = {"project": project, "state": None if state == "all" else state}
    print_records(client(ctx).call("GET", "/approvals", params=params), COLUMNS, as_json)


@app.command("show")
@reports_errors
def show(ctx: typer.Context, approval_id: str, as_json: bool = JsonOption) -> None:
    """Show one approval, with who asked and why."""
    columns = [
        *COLUMNS,
        "project",
        "session",
        "reason",
        "prefix",
        "items",
        "max_uses",
        "uses",
        "grant_ttl_seconds",
        "decided_by",
        "decision_reason",
    ]
    print_records(client(ctx).call("GET", f"/approvals/{approval_id}"), columns, as_json)


@app.command("approve")
@reports_errors
def approve(
    ctx: typer.Context,
    approval_id: str,
    reason: str = typer.Option("", "--reason", "-r", help="Why (audited)."),
    ttl: int | None = typer.Option(None, "--ttl", help="Seconds the approval may be used."),
    max_uses: int | None = typer.Option(
        None, "--max", help="A group: how many of its actions (at most its count)."
    ),
    prefix: str | None = typer.Option(
        None, "--prefix", help="A group: only resources under this narrower prefix."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Let the agent do exactly that action on that resource, once — or, for a group, that
    action on up to --max resources under its prefix, for --ttl seconds."""
    body: dict[str, object] = {"reason": reason}
    if ttl:
        body["ttl_seconds"] = ttl
    if max_uses:
        body["max_uses"] = max_uses
    if prefix:
        body["prefix"] = prefix
    out = client(ctx).call("POST", f"/approvals/{approval_id}/approve", body)
    print_records(out, DECIDED, as_json)


@app.command("deny")
@reports_errors
def deny(
    ctx: typer.Context,
    approval_id: str,
    reason: str = typer.Option(..., "--reason", "-r", help="Why; the agent is told."),
    as_json: bool = JsonOption,
) -> None:
    """Refuse; the agent's retries of that action are denied with your reason."""
    out = client(ctx).call("POST", f"/approvals/{approval_id}/deny", {"reason": reason})
    print_records(out, DECIDED, as_json)
