"""The package's floor plan, checked: every import inside ``src/mlcraft`` points down the layers.

    utils, config, course  <-  ops  <-  data, models  <-  training, evaluation  <-  recipes
        <-  mlops, inference  <-  classroom (grading, the hidden tests' helpers, the CLI)

A package may import its own modules and any package of a lower layer, never one of its own
layer or above. Imports inside functions and under ``TYPE_CHECKING`` count too: a lazy import
is still a dependency.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "mlcraft"

#: Layer of each top-level package or module of mlcraft (0 is the bottom).
LAYERS: dict[str, int] = {
    "__init__": 0,
    "utils": 0,
    "config": 0,
    "course": 0,
    "ops": 1,
    "data": 2,
    "models": 2,
    "training": 3,
    "evaluation": 3,
    "recipes": 4,
    "mlops": 5,
    "inference": 5,
    "classroom": 6,
}


@dataclass(frozen=True)
class Import:
    file: str  # relative to src/mlcraft
    line: int
    source: str  # top-level package of the importing file
    target: str  # top-level package imported


def package_of(path: Path, root: Path) -> str:
    return path.relative_to(root).parts[0].removesuffix(".py")


def mlcraft_imports(root: Path) -> list[Import]:
    """Every import of another top-level mlcraft package, from every ``.py`` file under ``root``."""
    found: list[Import] = []
    for path in sorted(root.rglob("*.py")):
        source = package_of(path, root)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
                if node.module == "mlcraft":  # `from mlcraft import models`
                    modules = [f"mlcraft.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            else:
                continue
            for module in modules:
                parts = module.split(".")
                if parts[0] == "mlcraft" and len(parts) > 1 and parts[1] != source:
                    found.append(Import(str(path.relative_to(root)), node.lineno, source, parts[1]))
    return found


def violations(root: Path, layers: dict[str, int]) -> list[Import]:
    """Imports that point sideways or up (or at a package the layer table does not know)."""
    return [
        imp
        for imp in mlcraft_imports(root)
        if imp.target == "__version__" or layers.get(imp.target, 99) >= layers.get(imp.source, -1)
    ]


def test_every_package_has_a_layer() -> None:
    packages = {
        package_of(path, SRC) for path in SRC.glob("*") if path.suffix == ".py" or (path / "__init__.py").exists()
    }
    assert packages == set(LAYERS), f"add new packages to LAYERS (and to the docstring): {packages ^ set(LAYERS)}"


def test_no_import_points_sideways_or_up() -> None:
    bad = violations(SRC, LAYERS)
    listing = "\n".join(
        f"  {v.file}:{v.line}: {v.source} (layer {LAYERS.get(v.source)}) imports {v.target} (layer {LAYERS.get(v.target)})"
        for v in bad
    )
    assert not bad, f"{len(bad)} imports break the layering:\n{listing}"


def test_ml_layers_never_import_the_classroom() -> None:
    reached = [imp for imp in mlcraft_imports(SRC) if imp.target == "classroom"]
    assert all(imp.source == "classroom" for imp in reached), reached


def test_the_checker_catches_upward_sideways_and_lazy_imports(tmp_path: Path) -> None:
    """The rule can fail: a fake tree with one import of each kind."""
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "m.py").write_text(
        "from mlcraft.training import Trainer\n"  # up
        "import mlcraft.data.shapes\n"  # sideways (same layer)
        "from mlcraft.ops import nms\n"  # down: allowed
        "def f():\n    from mlcraft import classroom\n"  # lazy, up
        "from mlcraft.models.gpt import GPT\n"  # own package: allowed
    )
    found = {(v.target, v.line) for v in violations(tmp_path, LAYERS)}
    assert found == {("training", 1), ("data", 2), ("classroom", 5)}


def test_ml_packages_import_without_the_classroom_stack() -> None:
    """Importing any ML package loads none of the grading stack (nbgrader, nbclient, jupyter).

    One fresh process imports the packages one by one and names the package that first pulled
    in each heavy module."""
    import subprocess
    import sys

    modules = ["mlcraft"] + [
        f"mlcraft.{p}" for p, layer in sorted(LAYERS.items()) if p != "__init__" and layer < LAYERS["classroom"]
    ]
    code = (
        "import importlib, sys\n"
        "heavy = lambda: {m for m in sys.modules if m.split('.')[0] in "
        "{'nbgrader', 'nbclient', 'nbconvert', 'jupyter_client', 'jupyter_server'} or m.startswith('mlcraft.classroom')}\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "    assert not heavy(), (name, sorted(heavy()))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
