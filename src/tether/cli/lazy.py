"""Command groups imported only when used: ``tether sessions kill`` must not pay for the
database, Cedar and AWS libraries that ``tether up`` or ``tether admin`` need (the CLI's
start time is most of a kill's latency from a terminal)."""

from __future__ import annotations

import importlib
from typing import Any, ClassVar

import typer
from typer.core import TyperGroup

__all__ = ["LazyGroup"]


class LazyGroup(TyperGroup):
    """Subclasses name their groups in ``lazy``: command name to the module whose ``app``
    (a ``typer.Typer``) implements it."""

    lazy: ClassVar[dict[str, str]] = {}

    def list_commands(self, ctx: Any) -> list[str]:
        return [*super().list_commands(ctx), *(n for n in self.lazy if n not in self.commands)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        module = self.lazy.get(cmd_name)
        if module is None or cmd_name in self.commands:
            return super().get_command(ctx, cmd_name)
        command = typer.main.get_group(importlib.import_module(module).app)
        command.name = cmd_name
        self.commands[cmd_name] = command
        return command
