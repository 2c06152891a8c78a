"""Progress of long CLI runs (audit verify and export): a Rich bar on a terminal,
nothing otherwise, so scripts and logs get only the result."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from tether.cli.output import errors

__all__ = ["progress_bar"]


@contextmanager
def progress_bar(label: str, total: int) -> Iterator[Callable[[], None]]:
    """Yields ``advance()``, to call once per item."""
    if not errors.is_terminal:
        yield lambda: None
        return
    columns = (
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=errors, transient=True) as progress:
        task = progress.add_task(label, total=total or None)
        yield lambda: progress.advance(task)
