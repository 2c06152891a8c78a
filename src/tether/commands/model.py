"""The parser's answer: one action per effect found in the command line."""

from __future__ import annotations

from dataclasses import dataclass

from tether.redaction.text import redact_text

__all__ = ["CommandAction", "not_understood", "too_complex"]


@dataclass(frozen=True, slots=True)
class CommandAction:
    action: str
    resource: str
    understood: bool = True
    detail: str = ""
    """For a command not understood: why (shown in the denial)."""
    too_complex: bool = False
    """Past the parser's limits: refused whatever the policy says (fail closed)."""


MAX_COMMAND_CHARS = 1000


def not_understood(command: str, why: str) -> CommandAction:
    """The resource is the command itself (secrets blanked), so a policy can still permit
    it explicitly by prefix: ``resource.arn like "command:make *"``."""
    text = redact_text(command.strip())[:MAX_COMMAND_CHARS]
    return CommandAction("tool:Bash", f"command:{text}", False, why)


def too_complex(command: str, why: str) -> CommandAction:
    """A command past the parser's limits: refused with ``command_too_complex`` rather
    than read for seconds. Only its start is redacted and kept, so this costs no more
    than the limit."""
    text = redact_text(command[: MAX_COMMAND_CHARS + 200].strip())[:MAX_COMMAND_CHARS]
    return CommandAction("tool:Bash", f"command:{text}", False, why, too_complex=True)
