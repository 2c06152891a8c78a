"""The house keeps its shape: every part stands on a layer, the imports keep to the layers
(``lint-imports``), and the imports that run upward are the ones ``docs/architecture.md``
names and justifies, at most two."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "src" / "tether"


def _hook() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_layers", ROOT / "docs_hooks/layers.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _parts() -> set[str]:
    folders = {p.name for p in SOURCE.iterdir() if (p / "__init__.py").exists()}
    modules = {p.stem for p in SOURCE.glob("*.py") if p.stem not in ("__init__", "__main__")}
    return folders | modules


def test_every_part_stands_on_a_layer() -> None:
    placed = {name for layer in _hook().contract_layers() for name in layer}
    assert _parts() - placed == set(), "add the new part to a layer in pyproject.toml"
    assert placed - _parts() == set(), "a layer names a part that no longer exists"


def test_imports_keep_to_the_layers() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    checked = subprocess.run(
        [str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert checked.returncode == 0, checked.stdout[-4000:]
    assert "3 kept, 0 broken" in checked.stdout


def test_upward_imports_are_named_and_justified() -> None:
    hook = _hook()
    upward = hook.upward_imports(hook.contract_layers(), hook.imports_between_parts())
    assert len(upward) <= 2
    architecture = (ROOT / "docs/architecture.md").read_text()
    justified = architecture[architecture.index("## Layers") :]
    for found in upward:
        path = found.module.removeprefix("tether.").replace(".", "/") + ".py"
        target = found.target.removeprefix("tether.").replace(".", "/") + ".py"
        assert f"`{path}` imports `{target}`" in justified, found


def test_the_layer_check_sees_an_upward_import() -> None:
    """The check itself can fail: the store importing a control is found as upward."""
    hook = _hook()
    planted = hook.Import("tether.store.agents", "tether.identity.directory", 1)
    assert hook.upward_imports(hook.contract_layers(), [planted]) == [planted]


def test_the_architecture_page_draws_the_layers_from_the_code() -> None:
    hook = _hook()
    assert hook.DIAGRAM_MARK in (ROOT / "docs/architecture.md").read_text()
    diagram = "\n".join(hook.diagram_markdown(hook.contract_layers(), hook.imports_between_parts()))
    assert diagram.startswith("```mermaid") and "pipeline --> " in diagram
    drawn = {line.strip() for line in diagram.splitlines() if "-->" in line}
    assert not {"store --> identity", "store --> budgets", "store --> policy"} & drawn
