"""Database clients (``psql``, ``mysql``, ``sqlite3``) given SQL on the command line:
each statement becomes ``db:DropTable``, ``db:Delete``, ``db:Query``, … on
``postgres://HOST/DB/TABLE``."""

from __future__ import annotations

import re

from tether.commands.model import CommandAction

__all__ = ["sql_actions"]

_STATEMENTS = [
    (re.compile(r"^drop\s+table\s+(?:if\s+exists\s+)?([\w.\"]+)", re.I), "db:DropTable"),
    (
        re.compile(r"^drop\s+(?:database|schema)\s+(?:if\s+exists\s+)?([\w.\"]+)", re.I),
        "db:DropDatabase",
    ),
    (re.compile(r"^drop\s+\w+\s+(?:if\s+exists\s+)?([\w.\"]+)", re.I), "db:Drop"),
    (re.compile(r"^truncate\s+(?:table\s+)?([\w.\"]+)", re.I), "db:Truncate"),
    (re.compile(r"^delete\s+from\s+([\w.\"]+)", re.I), "db:Delete"),
    (re.compile(r"^alter\s+\w+\s+(?:if\s+exists\s+)?([\w.\"]+)", re.I), "db:Alter"),
    (re.compile(r"^(?:insert\s+into|update)\s+([\w.\"]+)", re.I), "db:Write"),
    (re.compile(r"^create\s+\w+\s+(?:if\s+not\s+exists\s+)?([\w.\"]+)", re.I), "db:Create"),
    (re.compile(r"^(?:select|with|show|explain|\\d)", re.I), "db:Query"),
]  # fmt: skip

_CLIENTS = {
    "psql": ("postgres", ("-c", "--command"), ("-d", "--dbname"), ("-h", "--host")),
    "mysql": ("mysql", ("-e", "--execute"), ("-D", "--database"), ("-h", "--host")),
}


def _statements_to_actions(sql: str, base: str) -> list[CommandAction]:
    found = []
    for statement in (s.strip() for s in sql.split(";")):
        if not statement:
            continue
        for pattern, action in _STATEMENTS:
            match = pattern.match(statement)
            if match:
                target = match.group(1).strip('"') if match.groups() else ""
                if action == "db:DropDatabase":
                    found.append(CommandAction(action, base.rsplit("/", 1)[0] + f"/{target}"))
                else:
                    found.append(CommandAction(action, f"{base}/{target}" if target else base))
                break
        else:
            return []
    return found


def _option(argv: list[str], names: tuple[str, ...]) -> str | None:
    for i, arg in enumerate(argv):
        for name in names:
            if arg == name and i + 1 < len(argv):
                return argv[i + 1]
            if name.startswith("--") and arg.startswith(name + "="):
                return arg.split("=", 1)[1]
            if not name.startswith("--") and arg.startswith(name) and len(arg) > len(name):
                return arg[len(name) :]
    return None


def sql_actions(argv: list[str]) -> list[CommandAction] | None:
    """None unless the SQL is on the command line and every statement is recognised."""
    program = argv[0].rsplit("/", 1)[-1]
    if program == "sqlite3":
        args = [a for a in argv[1:] if not a.startswith("-")]
        if len(args) < 2:
            return None
        return _statements_to_actions(args[1], f"sqlite://{args[0]}") or None
    scheme, command, database, host = _CLIENTS[program]
    sql = _option(argv, command)
    if sql is None:
        return None
    urls = [a for a in argv[1:] if a.startswith(("postgres://", "postgresql://", "mysql://"))]
    if urls:
        base = urls[0].split("?")[0].rstrip("/")
    else:
        server = _option(argv, host) or "localhost"
        base = f"{scheme}://{server}/{_option(argv, database) or 'default'}"
    return _statements_to_actions(sql, base) or None
