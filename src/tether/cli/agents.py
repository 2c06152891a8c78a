"""``tether agents``."""

from __future__ import annotations

import typer

from tether.cli.context import JsonOption, ProjectFilter, ReasonOption, client, reports_errors
from tether.cli.output import console, print_json, print_records

app = typer.Typer(help="Agents: one identity and key per agent.", no_args_is_help=True)
COLUMNS = ["name", "project", "state", "description", "created_at"]


@app.command("create")
@reports_errors
def create(
    ctx: typer.Context,
    name: str,
    project: str = typer.Option(..., "--project", "-p", help="The project the agent belongs to."),
    description: str = typer.Option("", "--description", "-d", help="What the agent does."),
    as_json: bool = JsonOption,
) -> None:
    """Create an agent; its key is printed once."""
    body = {"name": name, "project": project, "description": description}
    created = client(ctx).call("POST", "/agents", body)
    if as_json:
        print_json(created)
        return
    print_records(created["agent"], COLUMNS, False)
    console.print(
        f"agent key (shown once, store it now): [bold]{created['key']}[/bold]", highlight=False
    )


@app.command("list")
@reports_errors
def list_(
    ctx: typer.Context,
    project: str | None = ProjectFilter,
    as_json: bool = JsonOption,
) -> None:
    """List agents."""
    agents = client(ctx).call("GET", "/agents", params={"project": project})
    print_records(agents, COLUMNS, as_json, "agents")


@app.command("show")
@reports_errors
def show(ctx: typer.Context, name: str, as_json: bool = JsonOption) -> None:
    """Show one agent."""
    print_records(client(ctx).call("GET", f"/agents/{name}"), COLUMNS, as_json)


def _transition(ctx: typer.Context, name: str, verb: str, reason: str, as_json: bool) -> None:
    agent = client(ctx).call("POST", f"/agents/{name}/{verb}", {"reason": reason})
    print_records(agent, [*COLUMNS, "state_by"], as_json)


@app.command("stop")
@reports_errors
def stop(
    ctx: typer.Context, name: str, reason: str = ReasonOption, as_json: bool = JsonOption
) -> None:
    """Stop an agent: its running streams are cut, every session refused until released."""
    _transition(ctx, name, "stop", reason, as_json)


@app.command("quarantine")
@reports_errors
def quarantine(
    ctx: typer.Context, name: str, reason: str = ReasonOption, as_json: bool = JsonOption
) -> None:
    """Deny every action of this agent until released; nothing else is affected."""
    _transition(ctx, name, "quarantine", reason, as_json)


@app.command("release")
@reports_errors
def release(
    ctx: typer.Context, name: str, reason: str = ReasonOption, as_json: bool = JsonOption
) -> None:
    """Release a stopped or quarantined agent."""
    _transition(ctx, name, "release", reason, as_json)


@app.command("revoke")
@reports_errors
def revoke(
    ctx: typer.Context, name: str, reason: str = ReasonOption, as_json: bool = JsonOption
) -> None:
    """Revoke an agent and all its keys, for good."""
    _transition(ctx, name, "revoke", reason, as_json)


@app.command("aws-keys")
@reports_errors
def aws_keys(
    ctx: typer.Context,
    name: str,
    revoke: bool = typer.Option(False, "--revoke", help="Revoke the agent's pair, issue none."),
    list_: bool = typer.Option(False, "--list", help="List the agent's access key ids."),
    as_json: bool = JsonOption,
) -> None:
    """Issue NAME's AWS access key pair for the broker (the secret is printed once; the
    agent's previous pair is revoked, no other agent's)."""
    if list_:
        keys = client(ctx).call("GET", f"/agents/{name}/aws-keys")
        print_records(keys, ["agent", "access_key_id", "created_at", "revoked_at"], as_json)
        return
    if revoke:
        print_records(
            client(ctx).call("DELETE", f"/agents/{name}/aws-keys"), ["agent", "revoked"], as_json
        )
        return
    issued = client(ctx).call("POST", f"/agents/{name}/aws-keys")
    if as_json:
        print_json(issued)
        return
    console.print(f"AWS_ACCESS_KEY_ID={issued['access_key_id']}", highlight=False, markup=False)
    console.print(
        f"AWS_SECRET_ACCESS_KEY={issued['secret_access_key']}", highlight=False, markup=False
    )
    console.print("(the secret is shown once: store it now)", highlight=False)
