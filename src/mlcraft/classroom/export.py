"""``mlcraft export-learner DIR``: the course as a class receives it, without what grades it.

The instructor's repository holds the assignment sources (``solutions/``: solutions and hidden
tests) and the instructor's checks (``tests/``: mutants, alternative solutions, the grader's
own tests). A learner who clones it sees them all. :func:`export_learner` writes a tree with
only what a learner needs: the lessons (``course/``), the released exercises (``exercises/``),
the package (``src/``, ``pyproject.toml``), the Binder set-up, the licence, the nbgrader
configuration (for the Validate button), a learner's ``README.md`` (the module table of the
instructor's README and how to work; nothing about grading) and a learner's ``Makefile``
(``make lab``, ``make check``). Caches, virtual environments and notebook checkpoints are never copied.

:func:`find_leaks` then searches every file of the result for each line of every solution
region, hidden-test region and alternative solution that is not public anyway (a line of a
lesson, of the package, or of a visible part of an assignment); the export fails if it finds
one, and the result is removed.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from mlcraft.classroom.grading.notebooks import HIDDEN_MARKERS, SOLUTION_MARKERS
from mlcraft.classroom.grading.paths import list_modules
from mlcraft.utils.logging import get_logger

__all__ = ["LEARNER_FILES", "ExportError", "Leak", "export_learner", "find_leaks", "secret_lines"]

log = get_logger(__name__)

#: What a learner's tree holds: folders copied whole (caches aside), then single files.
LEARNER_FILES = (
    "course",
    "exercises",
    "src",
    "binder",
    "jupyter",
    "pyproject.toml",
    "LICENSE",
    "nbgrader_config.py",
)
_SKIP_DIRS = {
    ".git",
    ".venv",
    "__pycache__",
    ".ipynb_checkpoints",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    "build",
    "dist",
    "mlruns",
    "node_modules",
}
_SKIP_SUFFIXES = (".pyc", ".pyo", ".egg-info", ".db", ".sqlite")
# Shorter lines (``return out``, ``x = 1``) say nothing about a solution.
_MIN_LINE = 16

_MAKEFILE = """\
# mlcraft, learner's copy.
#   make lab                 set everything up and open JupyterLab on the course
#   make check NB=exercises/00_orientation/00_orientation.ipynb
#                            run an exercise's visible tests and show its points
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LAB_OVERRIDES := $(VENV)/share/jupyter/lab/settings/overrides.d/mlcraft.json5
SERVER_CONFIG := $(VENV)/etc/jupyter/jupyter_server_config.json
ROOT_ARGS := $(if $(filter 0,$(shell id -u)),--allow-root,)
LAB_ARGS ?=
NB ?=

.DEFAULT_GOAL := help
.PHONY: help lab setup check sync clean

help:
\t@echo "make lab      set up and open JupyterLab on the course"
\t@echo "make check NB=exercises/NN_topic/NN_topic.ipynb   run an exercise's visible tests"
\t@echo "make sync     update each lesson's .ipynb from its .py (Jupytext)"
\t@echo "make clean    remove the virtual environment"

$(STAMP): pyproject.toml
\t@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
\t@echo "mlcraft: installing the course into $(VENV): about 2-3 minutes, once (again only when pyproject.toml changes)"
\t@$(BIN)/python -m pip install --quiet --upgrade pip
\t@$(BIN)/python -m pip install --quiet -e ".[lab]" & pid=$$!; trap 'kill $$pid 2>/dev/null; exit 130' INT TERM; \\
\t  s=0; while kill -0 $$pid 2>/dev/null; do sleep 1; s=$$((s + 1)); [ $$((s % 15)) -ne 0 ] || echo "  installing... $$s s"; done; \\
\t  wait $$pid && echo "mlcraft: installed in $$s s"
\t@touch $(STAMP)

# What the course ships for JupyterLab: defaults without the news pop-up (jupyter/overrides.json5),
# and the contents manager that pairs notebooks and opens them unmodified (mlcraft.classroom.lab).
$(LAB_OVERRIDES): jupyter/overrides.json5 $(STAMP)
\tinstall -D -m 644 jupyter/overrides.json5 $@

$(SERVER_CONFIG): jupyter/jupyter_server_config.json $(STAMP)
\tinstall -D -m 644 jupyter/jupyter_server_config.json $@

setup: $(STAMP) $(LAB_OVERRIDES) $(SERVER_CONFIG)

lab: $(STAMP) $(LAB_OVERRIDES) $(SERVER_CONFIG)
\t$(BIN)/jupyter lab --ServerApp.root_dir="$(CURDIR)" $(ROOT_ARGS) $(LAB_ARGS) course/00_orientation.ipynb

check: $(STAMP)
\t@test -n "$(NB)" || { echo "usage: make check NB=exercises/NN_topic/NN_topic.ipynb"; exit 2; }
\t$(BIN)/mlcraft check "$(NB)"

sync: $(STAMP)
\tcd course && for f in *.py; do ../$(BIN)/jupytext --sync --quiet $$f; done

clean:
\trm -rf $(VENV)
"""


_README = """\
# mlcraft

A hands-on course in production machine-learning engineering. Each module is a lesson that
builds the idea by hand, checks it against the library, and ends on a tested reference
implementation; and an exercise that proves you can do it yourself.

{modules}

## Start

On Linux or macOS with Python >= 3.11 and `make`:

```bash
make lab    # creates .venv, installs the course (2-3 minutes, once), opens JupyterLab
```

Without `make`: `python3 -m venv .venv && .venv/bin/pip install -e ".[lab]" && .venv/bin/jupyter lab`.

## How to work

- Read and run a lesson in `course/` (`NN_topic.ipynb`; its `.py` twin stays in step when you save).
- Then open its exercise in `exercises/NN_topic/`. Write your code in the cells that say
  `raise NotImplementedError()`, keep every other cell as it is, and run the whole notebook.
- Press **Validate** in the notebook's toolbar, or run
  `make check NB=exercises/NN_topic/NN_topic.ipynb`, to run the tests you can see and show
  your points on them. Your instructor grades with more tests than the ones you see: a
  function that passes only the visible tests is not done. Test edge cases yourself.
- Submit the exercise notebook as your instructor asks.

Everything runs offline on a laptop CPU; on a GPU the same notebooks use it.
"""


def _learner_readme(course_root: Path) -> str:
    """The learner's README: the module table of the instructor's README, then how to work."""
    lines = (
        (course_root / "README.md").read_text(encoding="utf-8").splitlines()
        if (course_root / "README.md").is_file()
        else []
    )
    start = next((i for i, line in enumerate(lines) if line.startswith("| module")), None)
    table = []
    if start is not None:
        for line in lines[start:]:
            if not line.startswith("|"):
                break
            table.append(line)
    return _README.format(
        modules="\n".join(table) if table else "The lessons are in `course/`, the exercises in `exercises/`."
    )


class ExportError(RuntimeError):
    """The export cannot be written, or what was written holds instructor-only text."""


@dataclass(frozen=True)
class Leak:
    """An instructor-only line found in the learner's tree."""

    path: str  # relative to the exported tree
    line: str
    origin: str  # e.g. "solutions/04_nlp/04_nlp.py (hidden tests)"

    def __str__(self) -> str:
        return f"{self.path}: {self.line!r} (from {self.origin})"


def _skipped(path: Path) -> bool:
    return path.name in _SKIP_DIRS or path.name.endswith(_SKIP_SUFFIXES)


def _copy(source: Path, target: Path) -> int:
    """Copy ``source`` (file or folder, links not followed) to ``target``; files copied."""
    if source.is_symlink() or _skipped(source):
        return 0
    if source.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
        return 1
    count = 0
    for child in sorted(source.iterdir()):
        count += _copy(child, target / child.name)
    return count


def _regions(lines: list[str], markers: tuple[str, str]) -> tuple[list[str], list[str]]:
    """``(inside, outside)``: the lines between ``markers`` and every other line."""
    inside: list[str] = []
    outside: list[str] = []
    depth = 0
    for line in lines:
        stripped = line.strip()
        if stripped.startswith(markers[0]):
            depth += 1
        elif stripped.startswith(markers[1]):
            depth = max(0, depth - 1)
        elif depth:
            inside.append(line)
        else:
            outside.append(line)
    return inside, outside


def _significant(lines: list[str]) -> set[str]:
    """Stripped lines long enough to identify code, comment-only lines included."""
    return {s for s in (line.strip() for line in lines) if len(s) >= _MIN_LINE}


def _text_lines(path: Path) -> list[str]:
    """A file's lines; a notebook's are its cells' sources and text outputs."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    if path.suffix != ".ipynb":
        return text.splitlines()
    try:
        notebook = json.loads(text)
    except ValueError:
        return text.splitlines()
    lines: list[str] = []
    for cell in notebook.get("cells", []) if isinstance(notebook, dict) else []:
        source = cell.get("source", "")
        lines += ("".join(source) if isinstance(source, list) else str(source)).splitlines()
        for output in cell.get("outputs", []) or []:
            text_out = output.get("text", "")
            lines += ("".join(text_out) if isinstance(text_out, list) else str(text_out)).splitlines()
    return lines + text.splitlines()  # the raw JSON too: a leak in metadata counts


def _files(root: Path) -> list[Path]:
    return sorted(
        p for p in root.rglob("*") if p.is_file() and not p.is_symlink() and not any(_skipped(q) for q in p.parents)
    )


def _windows(lines: list[str], size: int = 3) -> set[tuple[str, ...]]:
    """Every ``size`` consecutive significant lines (stripped), in order."""
    kept = [s for s in (line.strip() for line in lines) if len(s) >= _MIN_LINE]
    return {tuple(kept[i : i + size]) for i in range(len(kept) - size + 1)}


@dataclass
class _Secrets:
    lines: dict[str, str]  # a single line that is instructor-only
    runs: dict[tuple[str, ...], str]  # three consecutive hidden-test lines


def _secrets(course_root: Path) -> _Secrets:
    modules = list_modules(course_root / "solutions")
    lessons = [_text_lines(p) for p in _files(course_root / "course") if p.suffix == ".py"]
    package = [_text_lines(p) for p in _files(course_root / "src") if p.suffix == ".py"]
    public = set().union(*map(_significant, lessons + package))
    public_runs = set().union(*map(_windows, lessons))
    hidden: dict[str, str] = {}
    solution: dict[str, str] = {}
    runs: dict[tuple[str, ...], str] = {}
    for module in modules:
        source = course_root / "solutions" / module / f"{module}.py"
        hidden_lines, rest = _regions(_text_lines(source), HIDDEN_MARKERS)
        solution_lines, rest = _regions(rest, SOLUTION_MARKERS)
        public |= _significant(rest)
        public_runs |= _windows(rest)
        name = source.relative_to(course_root).as_posix()
        hidden.update(dict.fromkeys(_significant(hidden_lines), f"{name} (hidden tests)"))
        runs.update(dict.fromkeys(_windows(hidden_lines), f"{name} (hidden tests)"))
        solution.update(dict.fromkeys(_significant(solution_lines), f"{name} (solution)"))
        for variant in sorted((course_root / "tests" / "assignments" / module / "alternatives").glob("*.py")):
            origin = f"{variant.relative_to(course_root).as_posix()} (alternative solution)"
            for line in _significant(_text_lines(variant)):
                solution.setdefault(line, origin)
    lines = {line: origin for line, origin in {**solution, **hidden}.items() if line not in public}
    return _Secrets(lines, {run: origin for run, origin in runs.items() if run not in public_runs})


def secret_lines(course_root: Path) -> dict[str, str]:
    """Every instructor-only line of the course, mapped to where it comes from: a line of a
    solution region, a hidden-test region or an alternative solution that is not also in a
    lesson, the package or a visible part of an assignment source (``import contextlib`` is
    everywhere; ``assert f(3) == 17`` is not)."""
    return _secrets(course_root).lines


def find_leaks(tree: Path, course_root: Path) -> list[Leak]:
    """Instructor-only text found anywhere in ``tree``: a line of :func:`secret_lines`, three
    consecutive lines of a hidden test that no lesson or visible cell shows in that order (each
    line may be common; the sequence is the test), or any file under ``solutions``, ``tests`` or
    ``.ci``."""
    secret = _secrets(course_root)
    leaks: list[Leak] = []
    for path in _files(tree):
        relative = path.relative_to(tree).as_posix()
        if relative.split("/", 1)[0] in ("solutions", "tests", ".ci"):
            leaks.append(Leak(relative, "<the whole file>", "an instructor-only folder"))
            continue
        lines = _text_lines(path)
        seen: set[str] = set()
        for line in lines:
            stripped = line.strip()
            if stripped in secret.lines and stripped not in seen:
                seen.add(stripped)
                leaks.append(Leak(relative, stripped, secret.lines[stripped]))
        for run in _windows(lines) & secret.runs.keys():
            leaks.append(Leak(relative, " / ".join(run), secret.runs[run]))
    return leaks


def export_learner(course_root: Path, target: Path, *, force: bool = False) -> int:
    """Write the learner's tree of ``course_root`` to ``target``; returns the number of files.

    Raises:
        ExportError: ``target`` exists and is not empty (without ``force``), lies inside the
            course, or the result would hold instructor-only text (then nothing is left behind).
    """
    course_root, target = course_root.resolve(), target.resolve()
    if target == course_root or course_root in target.parents:
        raise ExportError(f"{target} is inside the course folder; choose a folder outside {course_root}")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        if not force:
            raise ExportError(f"{target} exists and is not empty; choose a new folder or pass --force to replace it")
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink()
    missing = [name for name in ("course", "exercises", "src") if not (course_root / name).is_dir()]
    if missing:
        raise ExportError(f"{course_root} has no {', '.join(missing)}; run this from the instructor's repository")
    target.mkdir(parents=True, exist_ok=True)
    count = 0
    for name in LEARNER_FILES:
        if (course_root / name).exists():
            count += _copy(course_root / name, target / name)
    (target / "Makefile").write_text(_MAKEFILE, encoding="utf-8")
    (target / "README.md").write_text(_learner_readme(course_root), encoding="utf-8")
    count += 2
    leaks = find_leaks(target, course_root)
    if leaks:
        shutil.rmtree(target)
        shown = "\n".join(f"  {leak}" for leak in leaks[:20])
        raise ExportError(
            f"the learner's tree would hold {len(leaks)} instructor-only lines; nothing was written:\n{shown}"
        )
    log.info("exported learner tree", folder=str(target), files=count)
    return count
