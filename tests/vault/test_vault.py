"""The master key and sealing of upstream credentials."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from tether.errors import ConfigError
from tether.vault.master_key import load_master_key
from tether.vault.sealed_box import SealedBox, UnsealError


def test_generated_key_file_is_private_and_stable(tmp_path: Path) -> None:
    path = tmp_path / "d" / "master.key"
    first = load_master_key(None, path)
    assert len(first) == 32
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_master_key(None, path) == first


def test_world_readable_key_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    load_master_key(None, path)
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_master_key(None, path)


def test_env_key_must_be_32_bytes_of_base64(tmp_path: Path) -> None:
    good = base64.b64encode(b"k" * 32).decode()
    assert load_master_key(good, tmp_path / "unused") == b"k" * 32
    with pytest.raises(ConfigError, match="32 bytes"):
        load_master_key(base64.b64encode(b"short").decode(), tmp_path / "unused")
    with pytest.raises(ConfigError, match="base64"):
        load_master_key("not base64!!", tmp_path / "unused")


def test_sealed_secret_opens_only_with_its_key_and_context() -> None:
    box = SealedBox(b"a" * 32)
    sealed = box.seal("sk-ant-secret", "credential:p1:anthropic")
    assert b"sk-ant-secret" not in sealed
    assert box.unseal(sealed, "credential:p1:anthropic") == "sk-ant-secret"
    with pytest.raises(UnsealError):
        box.unseal(sealed, "credential:p2:anthropic")
    with pytest.raises(UnsealError):
        SealedBox(b"b" * 32).unseal(sealed, "credential:p1:anthropic")
