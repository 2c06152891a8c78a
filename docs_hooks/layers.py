"""MkDocs hook: the layers page, drawn from the code's own imports at every build.

The layers are the import-linter contract in ``pyproject.toml`` (``lint-imports`` in CI
refuses an import that breaks them); this hook reads the same contract and the imports of
every module under ``src/tether`` (migrations included, which import-linter skips), and
writes the picture, the table of who imports whom, and every import that runs upward.
``tests/docs/test_layers.py`` holds those upward imports to the ones
``docs/architecture.md`` names and justifies.
"""

from __future__ import annotations

import ast
import tomllib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "src" / "tether"
LAYERS_PAGE = "reference/layers.md"


@dataclass(frozen=True, slots=True)
class Import:
    module: str
    """The importing module, dotted (``tether.store.migrations.versions.0008_…``)."""
    target: str
    line: int

    @property
    def source_part(self) -> str:
        return part_of(self.module)

    @property
    def target_part(self) -> str:
        return part_of(self.target)


def part_of(module: str) -> str:
    """The top-level part a module belongs to: ``tether.store.audit`` → ``store``."""
    return module.split(".")[1]


def contract_layers() -> list[list[str]]:
    """The layers of the import-linter contract, top first, each a list of parts."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contract = next(c for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers")
    return [
        [name.strip().strip("()") for name in layer.replace(":", "|").split("|")]
        for layer in contract["layers"]
    ]


def _module_name(path: Path) -> str:
    relative = path.relative_to(SOURCE.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_between_parts() -> list[Import]:
    """Every import of one part of tether by another, wherever it stands in the file."""
    found = []
    for path in sorted(SOURCE.rglob("*.py")):
        module = _module_name(path)
        if module == "tether":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            for target in targets:
                if target.startswith("tether.") and part_of(target) != part_of(module):
                    found.append(Import(module, target, node.lineno))
    return found


def upward_imports(layers: list[list[str]], imports: list[Import]) -> list[Import]:
    """Imports from a part to a part of a higher layer (or to a sibling in its layer)."""
    level = {name: index for index, layer in enumerate(layers) for name in layer}
    return [
        i
        for i in imports
        if i.source_part in level
        and i.target_part in level
        and level[i.target_part] <= level[i.source_part]
    ]


def _direct_edges(imports: list[Import]) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = defaultdict(set)
    for i in imports:
        edges[i.source_part].add(i.target_part)
    return edges


def _reachable_without(edges: dict[str, set[str]], start: str, skip: str) -> set[str]:
    seen: set[str] = set()
    todo = [t for t in edges.get(start, ()) if t != skip]
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(edges.get(node, ()))
    return seen


def drawn_edges(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    """The edges not implied by a longer way down (the picture stays readable)."""
    drawn = []
    for source in sorted(edges):
        for target in sorted(edges[source]):
            if target not in _reachable_without(edges, source, target):
                drawn.append((source, target))
    return drawn


def diagram_markdown(layers: list[list[str]], imports: list[Import]) -> list[str]:
    """A Mermaid flowchart: each layer a row, each part a box, the imports as arrows."""
    edges = _direct_edges(imports)
    known = {name for layer in layers for name in layer}
    lines = ["```mermaid", "flowchart TB"]
    for index, layer in enumerate(layers):
        present = [name for name in layer if (SOURCE / name).exists() or _is_module(name)]
        lines.append(f'  subgraph L{index}["layer {len(layers) - index}"]')
        lines.append("    direction LR")
        lines.extend(f"    {name}" for name in present)
        lines.append("  end")
    lines.extend(f"  {s} --> {t}" for s, t in drawn_edges(edges) if s in known and t in known)
    lines.append("```")
    return lines


def layers_markdown(layers: list[list[str]], imports: list[Import]) -> str:
    edges = _direct_edges(imports)
    lines = [
        "# Layers",
        "",
        "Generated from the code at every build (`docs_hooks/layers.py`): the layers are",
        "the import-linter contract in `pyproject.toml`, which `lint-imports` enforces in",
        "CI; the arrows are the imports between parts, drawn where no longer way down",
        "implies them. Why the layers are what they are: [Architecture](../architecture.md).",
        "",
        *diagram_markdown(layers, imports),
    ]
    lines += ["", "| layer | part | imports |", "|---|---|---|"]
    for index, layer in enumerate(layers):
        for name in layer:
            uses = ", ".join(f"`{t}`" for t in sorted(edges.get(name, ()))) or "nothing of tether"
            lines.append(f"| {len(layers) - index} | `{name}` | {uses} |")
    upward = upward_imports(layers, imports)
    lines += ["", "## Imports that run upward", ""]
    if not upward:
        lines.append("None.")
    for i in upward:
        lines.append(f"- `{i.module}` (line {i.line}) imports `{i.target}`")
    lines += [
        "",
        "Each is named and justified in [Architecture](../architecture.md#layers);",
        "a new one fails the documentation test until it is.",
        "",
    ]
    return "\n".join(lines)


def _is_module(name: str) -> bool:
    return (SOURCE / f"{name}.py").exists()


DIAGRAM_MARK = "<!-- layers: drawn from the code at build time -->"


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """The architecture page shows the same picture, where it says so."""
    if page.file.src_uri != "architecture.md" or DIAGRAM_MARK not in markdown:
        return markdown
    diagram = "\n".join(diagram_markdown(contract_layers(), imports_between_parts()))
    return markdown.replace(DIAGRAM_MARK, diagram)


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    content = layers_markdown(contract_layers(), imports_between_parts())
    files.append(File.generated(config, LAYERS_PAGE, content=content))
    return files
