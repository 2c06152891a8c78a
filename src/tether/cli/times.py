"""One time format for every ``--since`` / ``--until``: an ISO time
(``2026-11-25T14:00:00Z``, an offset, or no zone for UTC) or a day (``2026-11-25``, its
start in UTC). Each command then sends what its API route takes."""

from __future__ import annotations

from datetime import UTC, datetime

import typer

from tether.cli.client import CliError

__all__ = ["SinceOption", "UntilOption", "as_day", "as_instant"]

TIME_HELP = "ISO time (2026-11-25T14:00:00Z) or a day (2026-11-25), UTC unless an offset is given"
SinceOption = typer.Option(None, "--since", help=TIME_HELP)
UntilOption = typer.Option(None, "--until", help=TIME_HELP)


def _parse(option: str, text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise CliError(
            f"{option} {text!r}: give an ISO 8601 time (2026-11-25T14:00:00Z) or a day"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def as_instant(option: str, text: str | None) -> str | None:
    """The time as ``YYYY-MM-DDTHH:MM:SS(.fff)Z`` in UTC."""
    if text is None:
        return None
    moment = _parse(option, text).astimezone(UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def as_day(option: str, text: str | None) -> str | None:
    """The UTC day the time falls on, ``YYYY-MM-DD``."""
    if text is None:
        return None
    return _parse(option, text).astimezone(UTC).strftime("%Y-%m-%d")
