"""Shell syntax: splits a command line into simple commands (``&&``, ``||``, ``;``, ``|``),
with their redirections, and refuses what cannot be read statically (command
substitution, ``eval``, here-documents, subshells)."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

__all__ = ["ShellSyntaxError", "SimpleCommand", "split_commands"]

_OPERATORS = {"&&", "||", ";", "|", "&", ";;", "|&"}
_REDIRECTS = {">", ">>", ">|", "&>", "&>>", "<", "<<", "<<<", "<>", ">&", "<&"}
_UNREADABLE = re.compile(r"\$\(|`|<\(|>\(")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_WRAPPERS = {"sudo", "env", "time", "nohup", "nice", "command", "exec", "stdbuf", "timeout"}
_WRAPPER_VALUES = {
    "sudo": {"-u", "-g", "-C", "-p", "-r", "-t", "-U", "-h", "-D"},
    "env": {"-u", "-C", "-S"},
    "nice": {"-n"},
    "timeout": {"-s", "-k"},
}
"""Wrapper options that take a value, so the value is not mistaken for the program."""


class ShellSyntaxError(ValueError):
    """The command cannot be read without running it."""


@dataclass(slots=True)
class SimpleCommand:
    argv: list[str]
    writes: list[str] = field(default_factory=list)
    """Files written by ``>``/``>>`` redirections."""


def _tokens(line: str) -> list[str]:
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|<>()")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        return list(lexer)
    except ValueError as exc:
        raise ShellSyntaxError(f"cannot parse the command line ({exc})") from None


def _strip_wrappers(argv: list[str]) -> list[str]:
    while argv and (_ASSIGNMENT.match(argv[0]) or argv[0] in _WRAPPERS):
        wrapper = argv.pop(0)
        while wrapper in _WRAPPERS and argv and argv[0].startswith("-"):
            option = argv.pop(0)
            if option in _WRAPPER_VALUES.get(wrapper, ()) and argv:
                argv.pop(0)
        if wrapper == "timeout" and argv:
            argv.pop(0)
    return argv


def _harmless(target: str) -> bool:
    return target.startswith("&") or target in ("/dev/null", "/dev/stderr", "/dev/stdout")


def split_commands(line: str) -> list[SimpleCommand]:
    if _UNREADABLE.search(line):
        raise ShellSyntaxError(
            "command substitution ($(…), `…`, <(…)) cannot be checked before it runs"
        )
    commands: list[SimpleCommand] = []
    current = SimpleCommand([])
    tokens = _tokens(line)
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token in _OPERATORS:
            commands.append(current)
            current = SimpleCommand([])
        elif token in ("(", ")"):
            raise ShellSyntaxError("subshells ( … ) are not checked; run the commands directly")
        elif token in ("<<", "<<-"):
            raise ShellSyntaxError("here-documents are not checked")
        elif token in _REDIRECTS or (
            token.isdigit() and i + 1 < len(tokens) and tokens[i + 1] in _REDIRECTS
        ):
            if token.isdigit():
                i += 1
                token = tokens[i]
            target = tokens[i + 1] if i + 1 < len(tokens) else ""
            if token.startswith((">", "&>")) and not _harmless(target):
                current.writes.append(target)
            i += 1
        else:
            current.argv.append(token)
        i += 1
    commands.append(current)
    result = []
    for command in commands:
        command.argv = _strip_wrappers(command.argv)
        if command.argv or command.writes:
            result.append(command)
    return result
