"""``tether --help`` lists every command group without importing one (the groups pull in
SQLAlchemy, Alembic, Cedar and botocore), and lists each with the module's own help."""

from __future__ import annotations

import importlib
import subprocess
import sys

from tether.cli.main import GROUPS


def test_each_listed_summary_is_the_groups_own_help() -> None:
    for name, summary in GROUPS.items():
        module = importlib.import_module(f"tether.cli.{name}")
        assert module.app.info.help == summary, name


def test_help_lists_every_group_without_importing_any() -> None:
    script = (
        "import sys\n"
        "from tether.cli.main import app\n"
        "try:\n"
        "    app(['--help'], prog_name='tether')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('IMPORTED', sorted(m for m in sys.modules if m.startswith('tether.cli.')"
        " and m.rsplit('.', 1)[1] in " + repr(sorted(GROUPS)) + "))\n"
        "print('SQLALCHEMY', 'sqlalchemy' in sys.modules)\n"
    )
    shown = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    assert shown.returncode == 0, shown.stderr
    assert "IMPORTED []" in shown.stdout
    assert "SQLALCHEMY False" in shown.stdout
    for name, summary in GROUPS.items():
        assert any(
            line.split("│")[1].split() == [name, *summary.split()]
            for line in shown.stdout.splitlines()
            if line.count("│") >= 2
        ), name
