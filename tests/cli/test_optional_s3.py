"""boto3 is an optional extra (``tether[s3]``): without it, S3 URLs are a clear error that
says what to install, and everything else works."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TETHER = [sys.executable, "-m", "tether.cli"]


def _without_boto3(tmp_path: Path) -> dict[str, str]:
    shadow = tmp_path / "shadow"
    for name in ("boto3", "botocore"):
        (shadow / name).mkdir(parents=True)
        (shadow / name / "__init__.py").write_text(f"raise ImportError('No module named {name}')\n")
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("TETHER_")},
        "PYTHONPATH": str(shadow),
        "TETHER_DATA_DIR": str(tmp_path / "data"),
    }


def test_s3_without_boto3_says_what_to_install(tmp_path: Path) -> None:
    env = _without_boto3(tmp_path)
    result = subprocess.run(
        [*TETHER, "audit", "verify", "--file", "s3://bucket/trail.jsonl"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    assert "tether[s3]" in result.stderr
    assert "Traceback" not in result.stderr

    trail = tmp_path / "empty.jsonl"
    trail.write_text("")
    local = subprocess.run(
        [*TETHER, "audit", "verify", "--file", str(trail)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert local.returncode == 0, local.stderr
