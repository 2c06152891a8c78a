"""Paths as the agent's shell would resolve them, relative to the hook's ``cwd``."""

from __future__ import annotations

import posixpath

__all__ = ["resolve"]


def resolve(path: str, cwd: str) -> str:
    """Absolute and normalised; ``~`` and variables are kept (tether cannot expand them)."""
    if path.startswith(("~", "$")):
        return path
    return posixpath.normpath(posixpath.join(cwd or "/", path))
