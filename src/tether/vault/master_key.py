"""The master key that encrypts upstream credentials at rest.

Taken from ``TETHER_MASTER_KEY`` (base64 of 32 bytes) or from a key file created on
first start with 0600 permissions, so a fresh ``tether up`` needs no setup.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from tether.errors import ConfigError

__all__ = ["load_master_key"]

KEY_BYTES = 32


def _decode(value: str, origin: str) -> bytes:
    try:
        key = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{origin} is not valid base64") from None
    if len(key) != KEY_BYTES:
        raise ConfigError(f"{origin} must decode to {KEY_BYTES} bytes, not {len(key)}")
    return key


def load_master_key(env_value: str | None, key_file: Path) -> bytes:
    """Return the master key, creating ``key_file`` (mode 0600) if neither source exists."""
    if env_value:
        return _decode(env_value, "TETHER_MASTER_KEY")
    if key_file.exists():
        mode = key_file.stat().st_mode & 0o777
        if mode & 0o077:
            raise ConfigError(
                f"{key_file} is readable by others (mode {mode:o}); run chmod 600 on it"
            )
        return _decode(key_file.read_text(), str(key_file))
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key = os.urandom(KEY_BYTES)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(base64.b64encode(key).decode())
    return key
