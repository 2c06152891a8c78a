"""The generated references are complete: every CLI command and option, every admin route
and every ``TETHER_*`` variable the code reads has a description, or this fails."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

from tether.environment import ENVIRONMENT

ROOT = Path(__file__).resolve().parents[2]


def _hook() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "docs_reference", ROOT / "docs_hooks/reference.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_command_and_option_has_help() -> None:
    hook = _hook()
    missing = []
    commands = list(hook.walk_commands(hook.cli_app()))
    assert len(commands) > 50
    for path, command in commands:
        name = " ".join(path)
        if not (command.help or "").strip():
            missing.append(name)
        for param in command.params:
            if param.param_type_name == "option" and not (param.help or "").strip():
                missing.append(f"{name} {param.opts[0]}")
    assert not missing, f"no help text: {missing}"


def test_every_admin_route_has_a_summary() -> None:
    hook = _hook()
    document = hook.admin_document()
    operations = [op for ops in document["paths"].values() for op in ops.values()]
    assert len(operations) > 40
    assert not [op["operationId"] for op in operations if not op.get("summary", "").strip()]
    page = hook.api_markdown(document)
    assert page.count("\n| `") == len(operations)


def test_every_variable_the_code_reads_is_described() -> None:
    read = set()
    for source in (ROOT / "src/tether").rglob("*.py"):
        read.update(re.findall(r"\bTETHER_[A-Z0-9_]*[A-Z0-9]\b", source.read_text()))
    documented = {name for var in ENVIRONMENT for name in var.names}
    assert not read - documented, f"not in tether.environment: {sorted(read - documented)}"
    assert not documented - read, f"documented but never read: {sorted(documented - read)}"
    assert all(var.meaning.strip() and var.default.strip() for var in ENVIRONMENT)


def test_help_shows_no_type_placeholders() -> None:
    """Flags take no value, so they show none; values read TEXT, INTEGER, PATH."""
    from typer.testing import CliRunner

    from tether.cli.main import app

    for args in (["agents", "create", "--help"], ["policy", "test", "--help"], ["up", "--help"]):
        result = CliRunner().invoke(app, args, env={"COLUMNS": "120"})
        assert result.exit_code == 0, result.output
        assert not re.search(r"<(bool|str|int|float|path|list)", result.output), result.output
        assert "TEXT" in result.output or "INTEGER" in result.output
