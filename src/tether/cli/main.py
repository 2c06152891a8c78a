"""The ``tether`` command."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, ClassVar

import typer
from rich.markup import escape

from tether import __version__
from tether.cli import check, fleet, help_format, spend
from tether.cli.context import JsonOption
from tether.cli.lazy import LazyGroup
from tether.cli.output import errors
from tether.errors import TetherError

if TYPE_CHECKING:
    from tether.config import Settings

help_format.install()

GROUPS = {
    "projects": "Projects: own agents, upstream credentials and budgets.",
    "agents": "Agents: one identity and key per agent.",
    "keys": "Agent keys: rotate one agent's key without touching the others.",
    "credentials": "Upstream credentials, held by tether and never by agents.",
    "aws": "The AWS credential broker: the project's real AWS credential, held by tether only.",
    "gcp": "Claude on Vertex AI: the project's Google service account, held by tether only.",
    "tokens": "Admin tokens (admin or read-only viewer).",
    "sessions": "Agent sessions.",
    "audit": "The audit trail.",
    "budgets": "Budgets: hard limits per project, agent and session.",
    "webhooks": "Where a project's alerts go.",
    "slack": "Approve / Deny buttons in Slack: the app's signing secret, who may click them.",
    "mcp": "Remote MCP servers: tether holds their credentials and decides every tool call.",
    "policy": "A project's Cedar policy: what its agents may touch.",
    "approvals": "Approve or deny what agents asked to do.",
    "guards": "Runaway-loop guards: repeated calls, retries, no progress, circuit breaker.",
    "tasks": "Long tasks kept by tether: goal, constraints, batches, checkpoints.",
    "drift": "Drift settings: when tasks are re-injected, drift warnings, system-prompt injection.",
    "hook": "Claude Code command hooks (SessionStart).",
    "connect": "Connect agents to tether: write their settings, then check the round trip.",
    "admin": "Recovery on the machine that holds tether's data (no admin token).",
    "drill": "Fire drills with a canary agent tether creates and revokes; real agents untouched.",
}
"""Each group's module (``tether.cli.NAME``) and the one-line help ``tether --help`` lists
(the module's own; a test keeps them equal)."""


class Commands(LazyGroup):
    lazy: ClassVar[dict[str, str]] = {name: f"tether.cli.{name}" for name in GROUPS}
    summaries: ClassVar[dict[str, str]] = GROUPS


app = typer.Typer(
    help="tether: identify, decide, record, budget and stop your AI agents.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=Commands,
)
app.command("spend")(spend.spend)
app.command("check")(check.check)
app.command("pause")(fleet.pause)
app.command("resume")(fleet.resume)


def _print_version(wanted: bool) -> None:
    if wanted:
        print(f"tether {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    url: str | None = typer.Option(None, "--url", envvar="TETHER_URL", help="tether's base URL."),
    token: str | None = typer.Option(
        None, "--token", envvar="TETHER_ADMIN_TOKEN", help="Admin token.", show_envvar=True
    ),
    _version: bool = typer.Option(
        False, "--version", is_eager=True, callback=_print_version, help="Print the version."
    ),
) -> None:
    ctx.obj = {"url": url, "token": token}


@app.command("version")
def version(as_json: bool = JsonOption) -> None:
    """Print tether's version."""
    print(json.dumps({"version": __version__}) if as_json else __version__)


@app.command("up")
def up(
    host: str | None = typer.Option(None, "--host", help="Default 127.0.0.1 (TETHER_HOST)."),
    port: int | None = typer.Option(None, "--port", help="Default 8080 (TETHER_PORT)."),
    no_migrate: bool = typer.Option(
        False, "--no-migrate", help="Do not migrate; refuse a database not at this schema."
    ),
    workers: int = typer.Option(
        1,
        "--workers",
        min=1,
        help="Server processes sharing the port (needs PostgreSQL and TETHER_REDIS_URL).",
    ),
) -> None:
    """Start the control plane (embedded SQLite unless TETHER_DATABASE_URL is set)."""
    from dataclasses import replace

    from tether.cli.event_loop import run_event_loop
    from tether.cli.up import serve
    from tether.config import Settings
    from tether.logs.setup import configure_logging

    try:
        settings = Settings.from_env()
        configure_logging(settings.log_level, settings.log_format, settings.log_buffer_bytes)
        settings = replace(
            settings,
            host=host or settings.host,
            port=port or settings.port,
            migrate=not no_migrate,
        )
        if workers > 1:
            from tether.cli.workers import run_workers

            raise typer.Exit(run_workers(settings, workers))
        run_event_loop(serve(settings))
    except TetherError as exc:
        errors.print(f"[red]error:[/red] {escape(exc.message)}", highlight=False)
        raise typer.Exit(2) from None
    except OSError as exc:
        errors.print(f"[red]error:[/red] cannot listen: {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None


@app.command("demo")
def demo(
    port: int = typer.Option(8080, "--port", help="Where the demo's tether listens."),
    minutes: float = typer.Option(5, "--minutes", min=0.1, help="How long the fleet runs."),
    keep: bool = typer.Option(False, "--keep", help="Keep the temporary data directory."),
) -> None:
    """tether, the fake Anthropic API and a misbehaving fleet: watch it at /ui."""
    from tether.cli.demo import DemoOptions, run_demo
    from tether.cli.event_loop import run_event_loop

    try:
        run_event_loop(run_demo(DemoOptions("127.0.0.1", port, minutes, keep)))
    except OSError as exc:
        errors.print(f"[red]error:[/red] cannot listen: {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


@app.command("migrate")
def migrate(as_json: bool = JsonOption) -> None:
    """Bring the database (TETHER_DATABASE_URL, or SQLite in TETHER_DATA_DIR) to this
    version's schema, then exit: a deploy step before replicas start with --no-migrate."""
    from tether.cli.event_loop import run_event_loop
    from tether.cli.local_store import local_database, printable_url
    from tether.config import Settings

    async def main(settings: Settings) -> None:
        async with local_database(settings):
            pass

    try:
        settings = Settings.from_env()
        run_event_loop(main(settings))
    except TetherError as exc:
        errors.print(f"[red]error:[/red] {escape(exc.message)}", highlight=False)
        raise typer.Exit(2) from None
    if as_json:
        print(json.dumps({"database": printable_url(settings), "schema": "up to date"}))
        return
    errors.print(
        escape(f"{printable_url(settings)}: schema up to date"), highlight=False, soft_wrap=True
    )
