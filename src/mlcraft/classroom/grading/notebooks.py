"""Notebook hygiene: Jupytext twins in sync, no committed outputs, nothing leaked to learners.

Each check returns a list of human-readable problems (empty when all is well), so the CLI,
``make test`` and CI share one implementation and report every problem at once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jupytext
import nbformat

__all__ = [
    "HIDDEN_MARKERS",
    "SOLUTION_MARKERS",
    "InvalidNotebookError",
    "cell_signature",
    "check_no_outputs",
    "check_release_leaks",
    "check_twins_in_sync",
    "find_graded_cells",
    "read_notebook",
    "read_notebook_bytes",
    "strip_solution_markers",
]

SOLUTION_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")
HIDDEN_MARKERS = ("### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")
# Per-cell metadata that records a run; it must not be committed.
_EXECUTION_METADATA = ("execution", "ExecuteTime")
# A line must be this long (stripped) before finding it in a release counts as a leak;
# shorter lines (`return out`, `x = x`) legitimately appear in scaffolds.
_MIN_LEAK_LINE = 20


class InvalidNotebookError(ValueError):
    """A file that should be a notebook is not valid JSON or not a valid nbformat v4 notebook."""


def read_notebook_bytes(data: bytes, name: str) -> tuple[nbformat.NotebookNode, int]:
    """Parse and validate a notebook file's bytes: ``(notebook as nbformat 4, its original major version)``.

    An nbformat 3 notebook (Jupyter before 2015) is converted to version 4.

    Raises:
        InvalidNotebookError: naming ``name`` and what is wrong: not UTF-8, JSON syntax (with line
            and column), nested too deeply, an unsupported or unconvertible format, or the
            nbformat schema error.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InvalidNotebookError(f"{name}: not UTF-8 text ({err.reason} at byte {err.start})") from err
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as err:
        raise InvalidNotebookError(
            f"{name}: not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})"
        ) from err
    except RecursionError:
        raise InvalidNotebookError(f"{name}: JSON nested too deeply to be a notebook") from None
    except MemoryError:
        raise InvalidNotebookError(f"{name}: too large to load") from None
    if not isinstance(raw, dict) or ("cells" not in raw and "worksheets" not in raw):
        raise InvalidNotebookError(f"{name}: JSON but not a notebook (no 'cells' list)")
    version = raw.get("nbformat")
    if type(version) is not int or version not in (3, 4):
        raise InvalidNotebookError(
            f"{name}: nbformat {version!r} is not a notebook format this grader reads (Jupyter writes 4)"
        )
    try:
        nb: nbformat.NotebookNode = nbformat.reads(text, as_version=4)
        nbformat.validate(nb)
    except RecursionError:
        raise InvalidNotebookError(f"{name}: nested too deeply to be a notebook") from None
    except Exception as err:  # nbformat raises several unrelated types
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if version == 3:
            raise InvalidNotebookError(
                f"{name}: an nbformat 3 notebook (Jupyter before 2015) that cannot be converted to version 4 "
                f"({first_line}); open it in a current Jupyter and save it again"
            ) from err
        raise InvalidNotebookError(f"{name}: not a valid notebook ({first_line})") from err
    return nb, version


def read_notebook(path: Path) -> nbformat.NotebookNode:
    """Read and validate an ``.ipynb`` (converted to nbformat 4 if it is older).

    Raises:
        InvalidNotebookError: see :func:`read_notebook_bytes`.
    """
    return read_notebook_bytes(path.read_bytes(), str(path))[0]


def _notebook_twins(folder: Path) -> list[tuple[Path, Path]]:
    """(``.py``, ``.ipynb``) pairs under ``folder``; a lone file pairs with a missing path."""
    pairs = []
    for py in sorted(folder.rglob("*.py")):
        if ".ipynb_checkpoints" in py.parts or py.name.startswith("_"):
            continue
        pairs.append((py, py.with_suffix(".ipynb")))
    for nb in sorted(folder.rglob("*.ipynb")):
        if ".ipynb_checkpoints" not in nb.parts and not nb.with_suffix(".py").exists():
            pairs.append((nb.with_suffix(".py"), nb))
    return pairs


def cell_signature(nb: Any) -> list[tuple[str, str, Any]]:
    """What must agree between twins: each cell's type, source and nbgrader metadata."""
    return [(c.cell_type, c.source.rstrip(), c.metadata.get("nbgrader")) for c in nb.cells]


def check_twins_in_sync(*folders: Path) -> list[str]:
    """Every ``.py`` has its ``.ipynb`` twin (and back) with the same cells."""
    problems = []
    for folder in folders:
        for py, ipynb in _notebook_twins(folder):
            if not ipynb.exists():
                problems.append(f"{py}: no paired notebook; run `make sync`")
                continue
            if not py.exists():
                problems.append(f"{ipynb}: no paired .py; run `jupytext --set-formats ipynb,py:percent {ipynb}`")
                continue
            from_py = jupytext.read(py, fmt="py:percent")
            from_nb = jupytext.read(ipynb)
            a, b = cell_signature(from_py), cell_signature(from_nb)
            if a != b:
                first = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
                problems.append(
                    f"{ipynb}: out of sync with {py.name} (first difference at cell {first}; "
                    f"{len(a)} cells in .py, {len(b)} in .ipynb); run `make sync`"
                )
    return problems


def check_no_outputs(paths: list[Path]) -> list[str]:
    """No outputs, execution counts or execution timestamps in committed notebooks."""
    problems = []
    for path in paths:
        try:
            nb = read_notebook(path)
        except InvalidNotebookError as err:
            problems.append(str(err))
            continue
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            if cell.get("outputs"):
                problems.append(f"{path}: cell {index} has outputs; clear them (`make sync` rewrites from the .py)")
            if cell.get("execution_count") is not None:
                problems.append(f"{path}: cell {index} has an execution count")
            if any(key in cell.metadata for key in _EXECUTION_METADATA):
                problems.append(f"{path}: cell {index} has execution timestamps in its metadata")
    return problems


def strip_solution_markers(source: str) -> str:
    """The reference answer of a solution cell: its source without the marker lines."""
    return "\n".join(line for line in source.splitlines() if line.strip() not in SOLUTION_MARKERS)


def _split_regions(source: str) -> tuple[set[str], set[str]]:
    """(lines inside solution / hidden-test regions, lines outside them), stripped."""
    inside: set[str] = set()
    outside: set[str] = set()
    markers = {SOLUTION_MARKERS[0]: SOLUTION_MARKERS[1], HIDDEN_MARKERS[0]: HIDDEN_MARKERS[1]}
    closing: str | None = None
    for line in source.splitlines():
        stripped = line.strip()
        if closing is None and stripped in markers:
            closing = markers[stripped]
        elif closing is not None and stripped == closing:
            closing = None
        else:
            (inside if closing is not None else outside).add(stripped)
    return inside, outside


def _secret_lines(source_nb: Any) -> set[str]:
    """Lines of solution regions and hidden tests that appear nowhere outside such regions."""
    secret: set[str] = set()
    public: set[str] = set()
    for cell in source_nb.cells:
        inside, outside = _split_regions(cell.source)
        secret |= inside
        public |= outside
    return {line for line in secret - public if len(line) >= _MIN_LEAK_LINE and not line.startswith("#")}


def check_release_leaks(source_dir: Path, release_dir: Path, modules: list[str]) -> list[str]:
    """Nothing of the solutions or hidden tests reaches the learner release.

    Checks each module's release folder for: files that are not in the source or that are
    Jupytext twins; nbgrader markers; any line of a solution region or hidden test block.
    """
    problems = []
    for module in modules:
        src, rel = source_dir / module, release_dir / module
        if not rel.is_dir():
            problems.append(f"{rel}: missing; run `make release`")
            continue
        twins = {nb.with_suffix(".py").name for nb in src.glob("*.ipynb")}
        for path in sorted(p for p in rel.rglob("*") if p.is_file()):
            relative = path.relative_to(rel)
            if path.name in twins or (path.suffix == ".py" and not (src / relative).exists()):
                problems.append(f"{path}: a .py file in the release (Jupytext twins carry solutions)")
            elif not (src / relative).exists():
                problems.append(f"{path}: not in {src}; the release must come from the source only")
        for source_path in sorted(src.glob("*.ipynb")):
            released = rel / source_path.name
            if not released.exists():
                problems.append(f"{released}: missing from the release")
                continue
            text = released.read_text(encoding="utf-8")
            for marker in (*SOLUTION_MARKERS, *HIDDEN_MARKERS):
                if marker.removeprefix("### ") in text:
                    problems.append(f"{released}: contains {marker!r}")
            released_lines = {
                line.strip() for cell in read_notebook(released).cells for line in cell.source.splitlines()
            }
            for line in sorted(_secret_lines(read_notebook(source_path)) & released_lines):
                problems.append(f"{released}: leaks a solution or hidden-test line: {line!r}")
    return problems


def find_graded_cells(nb: Any) -> list[Any]:
    """Cells nbgrader awards points for, in notebook order."""
    return [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]
