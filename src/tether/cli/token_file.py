"""Where the CLI on this machine finds its admin token, and how it is saved (0600)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["save_token"]


def save_token(path: Path, secret: str) -> None:
    """Created 0600 before the secret is written, so no other user can ever read it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret + "\n")
    os.chmod(path, 0o600)
