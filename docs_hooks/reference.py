"""MkDocs hook: the reference pages, generated from the code at every build.

The CLI reference comes from the Typer app, the admin API reference from the OpenAPI
document tether serves, the configuration reference from ``tether.environment``. Nothing
here is hand-copied, so the manual cannot drift from the code; ``tests/docs`` fails when
a command, option, route or variable has no description.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

CLI_PAGE = "reference/cli.md"
API_PAGE = "reference/admin-api.md"
CONFIG_PAGE = "reference/configuration.md"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _context(command: Any) -> Any:
    """A context to list a group's commands with (Typer carries its own copy of Click)."""
    from typer.core import TyperGroup

    context_class: Any = getattr(TyperGroup, "context_class", None)
    return context_class(command)


def walk_commands(
    command: Any, path: tuple[str, ...] = ("tether",)
) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every command of the CLI, depth first, groups before their commands."""
    yield path, command
    if hasattr(command, "list_commands"):
        ctx = _context(command)
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                yield from walk_commands(sub, (*path, name))


def cli_app() -> Any:
    import typer.main

    from tether.cli.main import app

    return typer.main.get_command(app)


def _param_row(param: Any) -> str:
    if param.param_type_name == "argument":
        name = f"`{(param.metavar or param.name or '').upper()}`"
        kind = "argument" + ("" if param.required else " (optional)")
    else:
        names = [*param.opts, *param.secondary_opts]
        name = ", ".join(f"`{n}`" for n in names)
        kind = "flag" if getattr(param, "is_flag", False) else "option"
        envvar = getattr(param, "envvar", None)
        if envvar:
            kind += f" (env `{envvar}`)"
    default = param.default
    shown = "" if default in (None, False, (), "") or callable(default) else f"`{default}`"
    return f"| {name} | {kind} | {shown} | {_cell(getattr(param, 'help', None) or '')} |"


def cli_markdown(root: Any) -> str:
    lines = [
        "# CLI reference",
        "",
        "Generated from the `tether` command itself at every build of this site: every",
        "command, its arguments and options. `tether COMMAND --help` prints the same.",
        "",
    ]
    for path, command in walk_commands(root):
        if len(path) == 1:
            lines += [f"`tether`: {_cell(command.help or '')}", ""]
            continue
        lines += [f"## `{' '.join(path)}`", "", (command.help or "").strip(), ""]
        params = [p for p in command.params if p.name != "help"]
        if hasattr(command, "list_commands"):
            subs = ", ".join(f"`{n}`" for n in command.list_commands(_context(command)))
            lines += [f"Commands: {subs}.", ""]
        if params:
            lines += ["| parameter | kind | default | meaning |", "|---|---|---|---|"]
            lines += [_param_row(p) for p in params]
            lines.append("")
    return "\n".join(lines) + "\n"


def admin_document() -> dict[str, Any]:
    from tether import __version__
    from tether.admin.app import routes
    from tether.admin.openapi import openapi_document

    return openapi_document(routes, __version__)


def api_markdown(document: dict[str, Any]) -> str:
    lines = [
        "# Admin HTTP API",
        "",
        "Generated at every build from the OpenAPI document tether serves at",
        "`GET /admin/v1/openapi.json`. Every route takes an admin token",
        '(`Authorization: Bearer …`); errors are `{"error": {"code", "message"}}`.',
        "",
        "| method | path | what it does | success |",
        "|---|---|---|---|",
    ]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            ok = sorted(s for s in operation["responses"] if s[0] == "2")
            lines.append(
                f"| `{method.upper()}` | `{path}` | {_cell(operation.get('summary') or '')} "
                f"| {', '.join(ok)} |"
            )
    return "\n".join(lines) + "\n"


def config_markdown() -> str:
    from tether.environment import ENVIRONMENT

    lines = [
        "# Configuration",
        "",
        "Every `TETHER_*` environment variable tether reads, generated at every build from",
        "`tether.environment` (a test fails when the code reads one not listed there).",
        "",
        "| variable | default | meaning |",
        "|---|---|---|",
    ]
    for var in ENVIRONMENT:
        names = ", ".join(f"`{n}`" for n in var.names)
        lines.append(f"| {names} | {_cell(var.default)} | {_cell(var.meaning)} |")
    return "\n".join(lines) + "\n"


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    pages = {
        CLI_PAGE: cli_markdown(cli_app()),
        API_PAGE: api_markdown(admin_document()),
        CONFIG_PAGE: config_markdown().replace("](", "](../"),
    }
    for uri, content in pages.items():
        files.append(File.generated(config, uri, content=content))
    return files
