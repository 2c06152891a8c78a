"""LiteLLM proxy, for comparison: ``litellm[proxy]`` installed into its own virtual
environment outside the repository (once; reused while the version matches), run with one
worker and no database, in front of the same fake upstream through its Anthropic
``/v1/messages`` route.

Without a database LiteLLM keeps no spend and no virtual keys: it cannot enforce a budget,
and the only key it accepts is its master key. Its database mode needs a Prisma engine
download that an offline machine cannot make.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

DEFAULT_VENV = Path.home() / ".cache" / "tether-bench" / "litellm-venv"
DEFAULT_VERSION = "1.108.7"
MASTER_KEY = "sk-litellm-bench-master-key"


class Unavailable(Exception):
    """LiteLLM could not be installed or started; the message says why."""


def _run(argv: list[str], timeout: float) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Unavailable(f"`{' '.join(argv[:4])} …` failed: {exc}") from exc
    if done.returncode != 0:
        last = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise Unavailable(f"`{' '.join(argv[:4])} …` exited {done.returncode}: " + " | ".join(last))


def installed_version(venv: Path) -> str | None:
    python = venv / "bin" / "python"
    if not (venv / "bin" / "litellm").exists():
        return None
    done = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.stdout.strip() if done.returncode == 0 else None


def ensure_installed(venv: Path, version: str, say: Callable[[str], None] = print) -> str:
    """The ``litellm`` executable in ``venv`` at ``version`` ("latest": whatever the index
    has), installing it first when needed; raises ``Unavailable`` with the reason."""
    have = installed_version(venv)
    if have is not None and version in ("latest", have):
        return str(venv / "bin" / "litellm")
    requirement = "litellm[proxy]" + ("" if version == "latest" else f"=={version}")
    say(f"installing {requirement} into {venv} (once) …")
    uv = os.environ.get("UV") or shutil.which("uv")
    venv.parent.mkdir(parents=True, exist_ok=True)
    if uv:
        _run([uv, "venv", "-q", "--allow-existing", "--python", sys.executable, str(venv)], 120)
        _run(
            [uv, "pip", "install", "-q", "--python", str(venv / "bin" / "python"), requirement], 600
        )
    else:
        _run([sys.executable, "-m", "venv", str(venv)], 120)
        _run([str(venv / "bin" / "pip"), "install", "-q", requirement], 900)
    have = installed_version(venv)
    if have is None:
        raise Unavailable(f"{requirement} installed, but `litellm` is not in {venv}/bin")
    return str(venv / "bin" / "litellm")


def write_config(path: Path, model: str, upstream_url: str, upstream_key: str) -> None:
    path.write_text(
        "model_list:\n"
        f"  - model_name: {model}\n"
        "    litellm_params:\n"
        f"      model: anthropic/{model}\n"
        f"      api_base: {upstream_url}\n"
        f"      api_key: {upstream_key}\n"
        "general_settings:\n"
        f"  master_key: {MASTER_KEY}\n"
    )


def argv(executable: str, config: Path, port: int) -> list[str]:
    return [
        executable,
        "--config",
        str(config),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--num_workers",
        "1",
    ]


def env() -> dict[str, str]:
    """No network at start (the bundled price map), no database, no telemetry."""
    clean = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "VIRTUAL_ENV")}
    return {**clean, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY": "False"}
