"""``tether mcp``: remote MCP servers agents reach through tether."""

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
from tether.cli.output import print_done, print_record, print_records

app = typer.Typer(
    help="Remote MCP servers: tether holds their credentials and decides every tool call.",
    no_args_is_help=True,
)
COLUMNS = ["name", "project", "url", "auth", "agent_url", "withheld"]
SHOW_FIELDS = [*COLUMNS, "listed", "tools", "created_at", "updated_at"]


def _read_credential() -> str:
    if sys.stdin.isatty():
        return str(typer.prompt("credential", hide_input=True))
    return sys.stdin.read().strip()


@app.command("add")
@reports_errors
def add(
    ctx: typer.Context,
    first: str = typer.Argument(..., metavar="[PROJECT] NAME"),
    second: str | None = typer.Argument(None, hidden=True),
    project_option: str | None = ProjectOption,
    url: str = typer.Option(..., "--url", help="The server's Streamable HTTP endpoint."),
    auth: str = typer.Option(
        "bearer",
        "--auth",
        help="bearer (a token on stdin), headers (a JSON object on stdin), oauth (client "
        "credentials as JSON on stdin: token_url, client_id, client_secret, scope, audience; "
        "tether fetches and refreshes the access token) or none.",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Register an MCP server for PROJECT; its credential is read from stdin, sealed and
    never shown again. Agents use the printed agent_url with their tether key."""
    project, name = project_and(first, second, project_option)
    body: dict[str, object] = {"name": name, "url": url, "auth": auth}
    if auth != "none":
        body["credential"] = _read_credential()
    print_records(
        client(ctx).call("POST", f"/projects/{project}/mcp-servers", body), COLUMNS, as_json
    )


@app.command("list")
@reports_errors
def list_(
    ctx: typer.Context,
    project: str | None = ProjectArgument,
    project_option: str | None = ProjectOption,
    as_json: bool = JsonOption,
) -> None:
    """List PROJECT's MCP servers."""
    project = the_project(project, project_option)
    print_records(client(ctx).call("GET", f"/projects/{project}/mcp-servers"), COLUMNS, as_json)


@app.command("show")
@reports_errors
def show(
    ctx: typer.Context,
    first: str = typer.Argument(..., metavar="[PROJECT] NAME"),
    second: str | None = typer.Argument(None, hidden=True),
    project_option: str | None = ProjectOption,
    as_json: bool = JsonOption,
) -> None:
    """One server: its pinned tools and those withheld until accepted."""
    project, name = project_and(first, second, project_option)
    data = client(ctx).call("GET", f"/projects/{project}/mcp-servers/{name}")
    print_record(data, SHOW_FIELDS, as_json)


@app.command("accept")
@reports_errors
def accept(
    ctx: typer.Context,
    first: str = typer.Argument(..., metavar="[PROJECT] NAME"),
    second: str | None = typer.Argument(None, hidden=True),
    project_option: str | None = ProjectOption,
    as_json: bool = JsonOption,
) -> None:
    """Accept the tool definitions NAME last listed: changed and new tools run again."""
    project, name = project_and(first, second, project_option)
    data = client(ctx).call("POST", f"/projects/{project}/mcp-servers/{name}/accept")
    print_record(data, SHOW_FIELDS, as_json)


@app.command("remove")
@reports_errors
def remove(
    ctx: typer.Context,
    first: str = typer.Argument(..., metavar="[PROJECT] NAME"),
    second: str | None = typer.Argument(None, hidden=True),
    project_option: str | None = ProjectOption,
    as_json: bool = JsonOption,
) -> None:
    """Remove an MCP server (and its sealed credential)."""
    project, name = project_and(first, second, project_option)
    client(ctx).call("DELETE", f"/projects/{project}/mcp-servers/{name}")
    print_done({"removed": "mcp_server", "name": name}, f"removed MCP server {name}", as_json)
