"""Imports only go down the layers: a test that walks every module's imports (ast).

The layer table (top to bottom; also in ``docs/architecture.md``). A package may import only
packages on a strictly lower layer, so two packages on one layer (``evaluate`` and ``train``)
do not import each other: what both need lives lower (checkpoints in ``nn``, process groups
in ``utils``).
"""

import ast
from pathlib import Path

import graphevent

LAYERS = {
    "cli": 7,
    "studies": 6,
    "evaluate": 5, "train": 5,
    "nn": 4, "metrics": 4,
    "data": 3,
    "io": 2, "simulate": 2,
    "config": 1, "utils": 1,
    "errors": 0,
}
PACKAGE = Path(graphevent.__file__).parent


def imports_of(path: Path) -> list[tuple[int, str]]:
    """``(line, graphevent subpackage)`` of every absolute graphevent import in ``path``."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        out += [(node.lineno, n.split(".")[1]) for n in names if n.startswith("graphevent.")]
    return out


def layer_of(path: Path) -> str:
    return path.relative_to(PACKAGE).with_suffix("").parts[0]


def test_every_package_has_a_layer():
    packages = {layer_of(p) for p in PACKAGE.rglob("*.py")} - {"__init__", "__main__"}
    assert packages == set(LAYERS)


def test_no_module_imports_a_layer_above_or_beside_it():
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        src = layer_of(path)
        if src not in LAYERS:  # graphevent/__init__.py, __main__.py: the top
            continue
        for line, dst in imports_of(path):
            if dst != src and dst in LAYERS and LAYERS[dst] >= LAYERS[src]:
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {src} (layer {LAYERS[src]}) imports {dst} (layer {LAYERS[dst]})")
    assert bad == []


def test_the_walk_sees_an_upward_import(tmp_path):
    """The checker itself: an import of a higher layer is found, with its line."""
    f = tmp_path / "m.py"
    f.write_text("import os\n\ndef g():\n    from graphevent.train.engine import Engine\n")
    assert imports_of(f) == [(4, "train")]


def test_commands_do_not_import_the_root_app():
    """``cli/app.py`` imports every command module; they print through ``cli/console.py``, so
    no command imports ``graphevent.cli.app`` back (no import circle)."""
    bad = []
    for path in sorted((PACKAGE / "cli").glob("*.py")):
        if path.name == "app.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            bad += [f"cli/{path.name}:{node.lineno}" for n in names if n == "graphevent.cli.app"]
    assert bad == []
    assert "from graphevent.cli.console import console, err_console" in (PACKAGE / "cli" / "app.py").read_text()
