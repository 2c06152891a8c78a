"""A command line to the actions it would take. Anything not recognised comes back
``understood=False`` (as ``tool:Bash`` on ``command:…``), never as an allow-by-default."""

from __future__ import annotations

from tether.commands.aws import aws_actions
from tether.commands.model import CommandAction, not_understood, too_complex
from tether.commands.paths import resolve
from tether.commands.shell import ShellSyntaxError, SimpleCommand, split_commands
from tether.commands.sql import sql_actions

__all__ = ["MAX_ACTIONS", "MAX_COMMAND_BYTES", "MAX_SUBCOMMANDS", "actions_of"]

MAX_COMMAND_BYTES = 16_384
"""A longer command line is refused unread: each byte costs every later stage (redaction,
policy, audit), and no command a person would review is this long."""
MAX_SUBCOMMANDS = 100
"""Simple commands (between ``|``, ``&&``, ``;`` …) in one line."""
MAX_ACTIONS = 100
"""Distinct effects of one line (SQL statements included): each is decided on its own."""


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


READ_ONLY = _words(
    "ls cat head tail less more wc which whereis type stat du df tree file diff cmp sort "
    "uniq cut tr basename dirname realpath readlink column nl sha256sum md5sum"
)
NO_PATHS = _words("echo printf true false pwd date whoami id uname hostname printenv sleep")
"""Harmless, and their arguments are not paths: a read of the working directory."""
PATTERN_FIRST = _words("grep egrep fgrep rg ag jq yq")
WRITES = _words("touch mkdir cp tee sed chmod chown ln install truncate")
DELETES = _words("rm rmdir unlink shred")
GIT_READS = _words("status log diff show branch fetch remote rev-parse ls-files blame")


def _paths(args: list[str], cwd: str) -> list[str]:
    return [resolve(a, cwd) for a in args if not a.startswith("-")] or [resolve(".", cwd)]


def _git(args: list[str], cwd: str) -> list[CommandAction] | None:
    sub = next((a for a in args if not a.startswith("-")), None)
    repo = resolve(".", cwd)
    if sub is None:
        return None
    if sub in GIT_READS:
        return [CommandAction("git:Read", repo)]
    if sub == "push":
        forced = any(
            a in ("-f", "--force", "--force-with-lease", "--mirror", "--delete")
            or a.startswith(("--force", "+", ":"))
            for a in args
        )
        return [CommandAction("git:ForcePush" if forced else "git:Push", repo)]
    if sub == "clean":
        return [CommandAction("file:Delete", repo)]
    if sub == "reset" and "--hard" in args:
        return [CommandAction("git:ResetHard", repo), CommandAction("file:Write", repo)]
    return [CommandAction(f"git:{sub[:1].upper()}{sub[1:]}", repo)]


def _find(args: list[str], cwd: str) -> list[CommandAction]:
    roots = []
    for arg in args:
        if arg.startswith(("-", "(", "!")):
            break
        roots.append(arg)
    paths = _paths(roots, cwd)
    if "-delete" in args or any(a in ("-exec", "-execdir", "-ok") for a in args):
        if "-delete" in args:
            return [CommandAction("file:Delete", p) for p in paths]
        return []
    return [CommandAction("file:Read", p) for p in paths]


def _simple(command: SimpleCommand, cwd: str) -> list[CommandAction] | None:
    argv = command.argv
    found = [CommandAction("file:Write", resolve(target, cwd)) for target in command.writes]
    if not argv:
        return found
    program, args = argv[0].rsplit("/", 1)[-1], argv[1:]
    if program == "aws":
        parsed = aws_actions(argv)
    elif program in ("psql", "mysql", "sqlite3"):
        parsed = sql_actions(argv)
    elif program in DELETES:
        parsed = [CommandAction("file:Delete", p) for p in _paths(args, cwd)]
    elif program == "mv":
        paths = _paths(args, cwd)
        parsed = [CommandAction("file:Delete", p) for p in paths[:-1]]
        parsed += [CommandAction("file:Write", paths[-1])]
    elif program in WRITES:
        targets = _paths(args[1:] if program in ("chmod", "chown") else args, cwd)
        parsed = [CommandAction("file:Write", p) for p in targets]
    elif program == "find":
        parsed = _find(args, cwd) or None
    elif program == "git":
        parsed = _git(args, cwd)
    elif program in NO_PATHS:
        parsed = [CommandAction("file:Read", resolve(".", cwd))]
    elif program in PATTERN_FIRST:
        positional = [a for a in args if not a.startswith("-")]
        parsed = [CommandAction("file:Read", p) for p in _paths(positional[1:], cwd)]
    elif program in READ_ONLY:
        parsed = (
            [CommandAction("file:Read", p) for p in _paths(args, cwd)]
            if args
            else [CommandAction("file:Read", resolve(".", cwd))]
        )
    else:
        parsed = None
    return None if parsed is None else found + parsed


def actions_of(line: str, cwd: str = "/") -> list[CommandAction]:
    """Each distinct effect once, in order of appearance: ``cat | cat | cat`` is one read.
    Linear in the line; past the limits above, one ``too_complex`` action instead."""
    size = len(line.encode("utf-8", "surrogatepass"))
    if size > MAX_COMMAND_BYTES:
        return [
            too_complex(
                line,
                f"the command is {size:,} bytes; tether checks commands of at most "
                f"{MAX_COMMAND_BYTES:,} bytes (split it, or put it in a script)",
            )
        ]
    try:
        commands = split_commands(line)
    except ShellSyntaxError as exc:
        return [not_understood(line, str(exc))]
    if not commands:
        return [not_understood(line, "an empty command")]
    if len(commands) > MAX_SUBCOMMANDS:
        return [
            too_complex(
                line,
                f"the command chains {len(commands):,} commands; tether checks at most "
                f"{MAX_SUBCOMMANDS} in one line (split it, or put it in a script)",
            )
        ]
    actions: dict[tuple[str, str], CommandAction] = {}
    unknown: CommandAction | None = None
    for command in commands:
        parsed = _simple(command, cwd)
        if parsed is None:
            if unknown is None:
                program = command.argv[0] if command.argv else "?"
                unknown = not_understood(line, f"tether does not know what `{program}` does")
                actions.setdefault((unknown.action, unknown.resource), unknown)
            continue
        for found in parsed:
            actions.setdefault((found.action, found.resource), found)
        if len(actions) > MAX_ACTIONS:
            return [
                too_complex(
                    line,
                    f"the command has more than {MAX_ACTIONS} distinct effects; tether "
                    "checks fewer in one line (split it, or put it in a script)",
                )
            ]
    return list(actions.values())
