"""``tether pause --all`` / ``tether resume --all``: the fleet-wide kill switch."""

from __future__ import annotations

import typer

from tether.cli.client import CliError
from tether.cli.context import JsonOption, ReasonOption, client, reports_errors
from tether.cli.output import print_records

COLUMNS = ["paused", "by", "reason", "at"]
AllOption = typer.Option(False, "--all", help="Required: this affects every agent.")


def _fleet(ctx: typer.Context, verb: str, everything: bool, reason: str, as_json: bool) -> None:
    if not everything:
        raise CliError(f"'tether {verb}' affects every agent; confirm with --all")
    print_records(client(ctx).call("POST", f"/{verb}", {"reason": reason}), COLUMNS, as_json)


@reports_errors
def pause(
    ctx: typer.Context,
    everything: bool = AllOption,
    reason: str = ReasonOption,
    as_json: bool = JsonOption,
) -> None:
    """Pause every agent of every project; running streams are cut."""
    _fleet(ctx, "pause", everything, reason, as_json)


@reports_errors
def resume(
    ctx: typer.Context,
    everything: bool = AllOption,
    reason: str = ReasonOption,
    as_json: bool = JsonOption,
) -> None:
    """Lift the fleet-wide pause."""
    _fleet(ctx, "resume", everything, reason, as_json)
