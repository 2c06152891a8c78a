"""Durations as operators type them: ``90``, ``90s``, ``10m``, ``2h``, ``7d``."""

from __future__ import annotations

import re

__all__ = ["parse_duration"]

UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
PATTERN = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")


def parse_duration(text: str) -> int:
    """Seconds; raises ValueError naming the accepted forms."""
    match = PATTERN.match(text.lower())
    if match is None:
        raise ValueError(f"{text!r} is not a duration; use e.g. 90s, 10m, 2h or 7d")
    return int(match.group(1)) * UNITS[match.group(2)]
