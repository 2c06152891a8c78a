"""Server-made SVG charts: geometry computed here, drawn by ``templates/charts.html``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Column", "ColumnChart", "column_chart", "percent", "stacked_chart"]

WIDTH = 560
HEIGHT = 140
MAX_LABELS = 7
GAP = 4


@dataclass(frozen=True, slots=True)
class Column:
    x: float
    y: float
    width: float
    height: float
    label: str
    value: float
    series: int


@dataclass(frozen=True, slots=True)
class ColumnChart:
    columns: list[Column]
    labels: list[tuple[float, str]]
    top: float
    width: int = WIDTH
    height: int = HEIGHT


def column_chart(groups: Sequence[tuple[str, Sequence[float]]]) -> ColumnChart:
    """One group of columns per label (a day, a session), one column per series in it."""
    top = max((v for _, values in groups for v in values), default=0.0) or 1.0
    slot = WIDTH / max(len(groups), 1)
    columns: list[Column] = []
    labels: list[tuple[float, str]] = []
    # Labels are written at the page's type size, not scaled down with the drawing: at
    # most MAX_LABELS of them fit under it.
    every = -(-len(groups) // MAX_LABELS) or 1
    for index, (label, values) in enumerate(groups):
        width = max((slot - GAP) / max(len(values), 1), 1.0)
        for series, value in enumerate(values):
            height = HEIGHT * value / top
            x = index * slot + series * width
            columns.append(Column(x, HEIGHT - height, width, height, label, value, series))
        if index % every == 0:
            labels.append((index * slot + slot / 2, label))
    return ColumnChart(columns, labels, top)


def stacked_chart(
    groups: Sequence[tuple[str, Sequence[float]]],
    series: Sequence[tuple[str, int]],
    label_every: int = 1,
) -> ColumnChart:
    """One column per label (an hour), its values stacked from the bottom; value ``i`` is
    series ``i``: its name and colour; every ``label_every``-th label is written."""
    top = max((sum(values) for _, values in groups), default=0.0) or 1.0
    slot = WIDTH / max(len(groups), 1)
    columns: list[Column] = []
    for index, (label, values) in enumerate(groups):
        base = float(HEIGHT)
        for (name, colour), value in zip(series, values, strict=True):
            height = HEIGHT * value / top
            base -= height
            width = max(slot - GAP, 1.0)
            columns.append(
                Column(index * slot, base, width, height, f"{label} {name}", value, colour)
            )
    labels = [
        (index * slot + slot / 2, label)
        for index, (label, _) in enumerate(groups)
        if index % max(label_every, 1) == 0
    ]
    return ColumnChart(columns, labels, top)


def percent(used: float | None, limit: float | None) -> float:
    """How full a budget is, 0 to 100 (a bar cannot be drawn past its end)."""
    if not used or not limit:
        return 0.0
    return max(0.0, min(100.0, 100.0 * used / limit))
