"""How the CLI prints: Rich tables for people, ``--json`` for scripts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

__all__ = [
    "console",
    "print_done",
    "print_json",
    "print_line",
    "print_more",
    "print_record",
    "print_records",
    "print_table",
]

console = Console()
errors = Console(stderr=True, soft_wrap=True)
"""Messages never wrap: a command in one stays whole, whatever the terminal's width."""


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2))


def print_table(
    rows: Sequence[dict[str, Any]], columns: Sequence[str], title: str | None = None
) -> None:
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if row.get(c) is None else escape(str(row.get(c))) for c in columns))
    console.print(table)


def print_records(
    data: Any, columns: Sequence[str], as_json: bool, title: str | None = None
) -> None:
    if as_json:
        print_json(data)
    else:
        print_table(data if isinstance(data, list) else [data], columns, title)


def print_record(data: dict[str, Any], fields: Sequence[str], as_json: bool) -> None:
    """One record with many fields, a line each: a wide row would not fit a terminal."""
    if as_json:
        print_json(data)
        return
    table = Table(show_header=False)
    table.add_column("setting", style="bold")
    table.add_column("value")
    for name in fields:
        value = data.get(name)
        table.add_row(name, "off" if value is None else str(value))
    console.print(table)


def print_line(message: str) -> None:
    """A line for people under a table, never wrapped."""
    console.print(escape(message), highlight=False, soft_wrap=True)


def print_more(next_page: str | None, option: str) -> None:
    """Say on stderr that a list was cut at its limit and how to get the rest, so a table
    or a script never mistakes a first page for everything."""
    if next_page is None:
        return
    _, _, value = next_page.partition("=")
    errors.print(
        escape(f"more available: run again with {option} {value} (or a larger --limit)"),
        highlight=False,
    )


def print_done(data: dict[str, Any], message: str, as_json: bool) -> None:
    """What a command did: a line for people, or the same as JSON for scripts."""
    if as_json:
        print_json(data)
    else:
        console.print(escape(message), highlight=False)
