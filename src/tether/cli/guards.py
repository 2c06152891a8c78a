"""``tether guards``: a project's runaway-loop guards."""

from __future__ import annotations

import typer

from tether.cli.client import CliError
from tether.cli.context import (
    JsonOption,
    ProjectArgument,
    ProjectOption,
    client,
    reports_errors,
    the_project,
)
from tether.cli.output import print_record

app = typer.Typer(
    help="Runaway-loop guards: repeated calls, retries, no progress, circuit breaker.",
    no_args_is_help=True,
)
COLUMNS = [
    "project",
    "repeat_limit",
    "repeat_window_seconds",
    "tool_repeat_limit",
    "max_retries",
    "stall_calls",
    "stall_minutes",
    "breaker_failures",
    "breaker_cooldown_seconds",
    "breaker_max_cooldown_seconds",
    "require_hooks",
    "on_trip",
]
OFF_HELP = " 'off' turns it off."


def limit_value(option: str, value: str | None) -> int | str | None:
    """An option's value as the API takes it: a number, None for 'off', '' when not given."""
    if value is None:
        return ""
    if value.lower() == "off":
        return None
    if not value.isdigit():
        raise CliError(f"{option} takes a whole number or 'off', not {value!r}")
    return int(value)


@app.command("show")
@reports_errors
def show(
    ctx: typer.Context,
    project: str | None = ProjectArgument,
    project_option: str | None = ProjectOption,
    as_json: bool = JsonOption,
) -> None:
    """Show PROJECT's guards."""
    project = the_project(project, project_option)
    print_record(client(ctx).call("GET", f"/projects/{project}/guards"), COLUMNS, as_json)


@app.command("set")
@reports_errors
def set_(
    ctx: typer.Context,
    project: str | None = ProjectArgument,
    project_option: str | None = ProjectOption,
    repeat_limit: str | None = typer.Option(
        None, "--repeat-limit", help="The same call at most N times per window." + OFF_HELP
    ),
    repeat_window: int | None = typer.Option(
        None, "--repeat-window", help="The repeat window, in seconds."
    ),
    tool_repeat_limit: str | None = typer.Option(
        None,
        "--tool-repeat-limit",
        help="The same tool call with the same result at most N times per session." + OFF_HELP,
    ),
    max_retries: str | None = typer.Option(
        None, "--max-retries", help="Retries of a request, failed calls in a row." + OFF_HELP
    ),
    stall_calls: str | None = typer.Option(
        None, "--stall-calls", help="Model calls in a row asking for nothing new." + OFF_HELP
    ),
    stall_minutes: str | None = typer.Option(
        None, "--stall-minutes", help="Minutes of calls without a new tool result." + OFF_HELP
    ),
    breaker_failures: str | None = typer.Option(
        None, "--breaker-failures", help="Upstream 429/5xx in a row before failing fast." + OFF_HELP
    ),
    breaker_cooldown: int | None = typer.Option(
        None, "--breaker-cooldown", help="Seconds the breaker first stays open (doubles each time)."
    ),
    breaker_max_cooldown: int | None = typer.Option(
        None, "--breaker-max-cooldown", help="The longest the breaker stays open, in seconds."
    ),
    require_hooks: bool | None = typer.Option(
        None,
        "--require-hooks/--no-require-hooks",
        help="Refuse tool results that no PreToolUse hook asked tether about.",
    ),
    on_trip: str | None = typer.Option(
        None, "--on-trip", help="Beyond refusing the call: deny, pause or terminate the session."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Change PROJECT's guards; options not given keep their values."""
    project = the_project(project, project_option)
    limits = {
        "repeat_limit": limit_value("--repeat-limit", repeat_limit),
        "tool_repeat_limit": limit_value("--tool-repeat-limit", tool_repeat_limit),
        "max_retries": limit_value("--max-retries", max_retries),
        "stall_calls": limit_value("--stall-calls", stall_calls),
        "stall_minutes": limit_value("--stall-minutes", stall_minutes),
        "breaker_failures": limit_value("--breaker-failures", breaker_failures),
    }
    others = {
        "repeat_window_seconds": repeat_window,
        "breaker_cooldown_seconds": breaker_cooldown,
        "breaker_max_cooldown_seconds": breaker_max_cooldown,
        "require_hooks": require_hooks,
        "on_trip": on_trip,
    }
    body = {k: v for k, v in limits.items() if v != ""} | {
        k: v for k, v in others.items() if v is not None
    }
    out = client(ctx).call("PATCH", f"/projects/{project}/guards", body)
    print_record(out, COLUMNS, as_json)
