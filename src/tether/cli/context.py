"""Options every admin command shares, set once on the root command."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, ParamSpec, TypeVar

import typer
from rich.markup import escape

from tether.cli.client import AdminClient, CliError
from tether.cli.output import errors

__all__ = [
    "AgentFilter",
    "JsonOption",
    "ProjectArgument",
    "ProjectFilter",
    "ProjectOption",
    "ReasonOption",
    "client",
    "project_and",
    "reports_errors",
    "the_project",
]

P = ParamSpec("P")
R = TypeVar("R")

JsonOption = typer.Option(False, "--json", help="Print JSON instead of a table.")
ProjectFilter = typer.Option(None, "--project", "-p", help="Only this project.")
AgentFilter = typer.Option(None, "--agent", "-a", help="Only this agent.")
ProjectOption = typer.Option(None, "--project", "-p", help="The project.")
ProjectArgument = typer.Argument(None, help="The project (or give it as -p/--project).")


def the_project(positional: str | None, option: str | None) -> str:
    """``-p/--project P`` everywhere, and the older positional form still works."""
    if positional and option and positional != option:
        raise CliError(f"two projects given: {positional!r} and -p {option!r}; give one")
    project = option or positional
    if not project:
        raise CliError("which project? give -p/--project NAME")
    return project


def project_and(first: str, second: str | None, option: str | None) -> tuple[str, str]:
    """For ``COMMAND [PROJECT] THING``: with -p the one argument is THING."""
    if option is not None:
        if second is not None:
            return the_project(first, option), second
        return option, first
    if second is None:
        raise CliError("which project? give -p/--project NAME")
    return first, second


ReasonOption = typer.Option("", "--reason", "-r", help="Why; shown to the affected agents' users.")


def client(ctx: typer.Context) -> AdminClient:
    obj: dict[str, Any] = ctx.find_root().obj or {}
    return AdminClient.from_env(obj.get("url"), obj.get("token"))


def reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn a ``CliError`` into its message on stderr and a non-zero exit code."""

    @wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except CliError as exc:
            errors.print(f"[red]error:[/red] {escape(exc.message)}", highlight=False)
            raise typer.Exit(exc.exit_code) from None

    return run
