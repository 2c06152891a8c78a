"""``--help`` without type placeholders: Typer labels every option ``<bool>`` or ``<str>``
(a flag takes no value at all); show flags bare and values as Click does (``TEXT``,
``INTEGER``, ``PATH``), so the help reads like the generated CLI reference."""

from __future__ import annotations

from typing import Any

import typer.core

__all__ = ["install"]

CLICK_NAMES = {"str": "TEXT", "int": "INTEGER", "float": "FLOAT", "bool": "BOOLEAN"}


def _label(shown: str | None) -> str | None:
    if shown is None or not shown.startswith("<"):
        return shown
    inner = shown.strip("<>")
    if inner.startswith("list[") and inner.endswith("]"):
        element = inner[len("list[") : -1]
        return CLICK_NAMES.get(element, element.upper()) + "..."
    return CLICK_NAMES.get(inner, inner.upper())


def install() -> None:
    """Replace the placeholder labels once, at import of the ``tether`` command."""
    option: Any = typer.core.TyperOption
    argument: Any = typer.core.TyperArgument
    if getattr(option, "_tether_labels", False):
        return
    option_display = option.display_type_rich
    argument_display = argument.display_type_rich

    def option_label(self: Any, ctx: Any) -> str | None:
        if self.is_flag:
            return None
        return _label(option_display(self, ctx))

    def argument_label(self: Any, ctx: Any) -> str | None:
        return _label(argument_display(self, ctx))

    option.display_type_rich = option_label
    argument.display_type_rich = argument_label
    option._tether_labels = True
