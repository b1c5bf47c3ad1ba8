"""``mlcraft export-learner``: the learners' copy holds the course and nothing that grades it.

The real course is exported once; the result must hold the lessons, the exercises and the
package, no file of ``solutions/`` or ``tests/``, and no line of any solution, hidden test or
alternative solution that is not public anyway. The search itself is tested by planting each
kind of instructor-only text in a copy of the export.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from mlcraft.classroom.export import ExportError, _regions, export_learner, find_leaks, secret_lines
from mlcraft.classroom.grading.notebooks import HIDDEN_MARKERS, SOLUTION_MARKERS
from mlcraft.classroom.grading.paths import list_modules

REPO = Path(__file__).resolve().parents[1]
MODULES = list_modules(REPO / "solutions")
PYPROJECT_EXTRAS = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"][
    "optional-dependencies"
]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("learner") / "mlcraft"
    export_learner(REPO, target)
    return target


def _source_lines(module: str) -> list[str]:
    return (REPO / "solutions" / module / f"{module}.py").read_text(encoding="utf-8").splitlines()


def test_the_export_holds_lessons_exercises_and_package(exported: Path) -> None:
    for module in MODULES:
        assert (exported / "exercises" / module / f"{module}.ipynb").is_file()
    lessons = sorted(p.name for p in (REPO / "course").glob("*.py"))
    assert lessons and sorted(p.name for p in (exported / "course").glob("*.py")) == lessons
    assert sorted(p.name for p in (exported / "course").glob("*.ipynb")) == sorted(
        p.name for p in (REPO / "course").glob("*.ipynb")
    )
    assert (exported / "src" / "mlcraft" / "__init__.py").is_file()
    assert (exported / "pyproject.toml").read_bytes() == (REPO / "pyproject.toml").read_bytes()
    assert "make lab" in (exported / "Makefile").read_text()


def test_the_export_holds_nothing_instructor_only(exported: Path) -> None:
    tops = {p.name for p in exported.iterdir()}
    assert not tops & {"solutions", "tests", ".ci", ".git", ".venv", "benchmarks", "docker"}, tops
    assert not [p for p in exported.rglob("*") if p.name in ("__pycache__", ".ipynb_checkpoints") or p.suffix == ".pyc"]
    assert find_leaks(exported, REPO) == []


def test_every_module_has_secret_lines_to_search_for() -> None:
    """The search is not empty: each module's hidden tests and solutions give it lines."""
    secret = secret_lines(REPO)
    for module in MODULES:
        origin = f"solutions/{module}/{module}.py"
        kinds = {o.split(" (")[1] for o in secret.values() if o.startswith(origin)}
        assert kinds == {"hidden tests)", "solution)"}, f"{module}: {kinds}"


def test_every_hidden_test_line_is_absent_from_the_released_exercise(exported: Path) -> None:
    """Line by line, independent of the secret-line filter: a hidden-test line can be in the
    learner's exercise only where the source shows the same line outside its hidden regions."""
    for module in MODULES:
        lines = _source_lines(module)
        hidden, visible = _regions(lines, HIDDEN_MARKERS)
        visible_set = {line.strip() for line in visible}
        notebook = json.loads((exported / "exercises" / module / f"{module}.ipynb").read_text(encoding="utf-8"))
        exercise = {line.strip() for cell in notebook["cells"] for line in "".join(cell["source"]).splitlines()}
        leaked = [
            line.strip()
            for line in hidden
            if len(line.strip()) >= 16 and line.strip() not in visible_set and line.strip() in exercise
        ]
        assert not leaked, f"{module}: hidden-test lines in the exercise: {leaked[:5]}"


@pytest.mark.parametrize(
    "plant",
    [
        "solution source",
        "hidden region in a lesson",
        "alternative in the package",
        "three hidden lines",
        "a tests file",
    ],
)
def test_planted_instructor_text_is_found(exported: Path, tmp_path: Path, plant: str) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(exported, copy)
    module = MODULES[-1]
    lines = _source_lines(module)
    hidden, _ = _regions(lines, HIDDEN_MARKERS)
    solution, _ = _regions(lines, SOLUTION_MARKERS)
    if plant == "solution source":
        shutil.copy(REPO / "solutions" / module / f"{module}.py", copy / "course" / "notes.py")
    elif plant == "hidden region in a lesson":
        lesson = next((copy / "course").glob("*.py"))
        lesson.write_text(lesson.read_text() + "\n" + "\n".join(hidden) + "\n")
    elif plant == "alternative in the package":
        alternative = next((REPO / "tests" / "assignments" / module / "alternatives").glob("*.py"))
        shutil.copy(alternative, copy / "src" / "mlcraft" / "helpers_for_later.py")
    elif plant == "three hidden lines":
        # Three consecutive hidden-test lines, each of them possibly common on its own.
        kept = [line for line in hidden if len(line.strip()) >= 16]
        (copy / "README.md").write_text("\n".join(kept[3:6]) + "\n")
    else:
        (copy / "tests").mkdir()
        (copy / "tests" / "anything.txt").write_text("x")
    leaks = find_leaks(copy, REPO)
    assert leaks, f"{plant}: nothing found"
    if plant != "a tests file":
        assert any(module in leak.origin or "alternative" in leak.origin for leak in leaks), leaks[:3]
    del solution


def test_export_refuses_a_folder_in_use_or_inside_the_course(tmp_path: Path) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="not empty"):
        export_learner(REPO, busy)
    assert (busy / "keep.txt").read_text() == "mine"
    with pytest.raises(ExportError, match="inside the course"):
        export_learner(REPO, REPO / "build" / "learner")


def test_cli_export_and_check_in_the_learner_tree(tmp_path: Path) -> None:
    mlcraft = Path(sys.executable).parent / "mlcraft"
    target = tmp_path / "class"
    done = subprocess.run([str(mlcraft), "export-learner", str(target)], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "keep" in done.stdout and str(target) in done.stdout.replace("\n", "")
    again = subprocess.run([str(mlcraft), "export-learner", str(target)], cwd=REPO, capture_output=True, text=True)
    assert again.returncode == 2 and "--force" in again.stderr


def test_the_learners_make_lab_installs_jupyterlab_and_the_course_settings(exported: Path) -> None:
    """The learner's `make lab` installs the [lab] extra (JupyterLab, nbgrader's Validate button,
    `mlcraft check`) and the JupyterLab settings the course ships, then opens the first lesson."""
    for name in ("overrides.json5", "jupyter_server_config.json"):
        assert (exported / "jupyter" / name).read_bytes() == (REPO / "jupyter" / name).read_bytes()
    assert "jupyterlab" in {r.split(">")[0] for r in PYPROJECT_EXTRAS["lab"]}
    plan = subprocess.run(
        ["make", "-n", "-B", "lab"],
        cwd=exported,
        capture_output=True,
        text=True,
        # a clean environment for make: under `make test` the parent's MAKEFLAGS/MAKELEVEL would
        # add "Entering/Leaving directory" lines to the plan
        env={k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
        | {"PYTHON": "python3"},
    )
    assert plan.returncode == 0, plan.stderr
    assert 'pip install --quiet -e ".[lab]"' in plan.stdout
    assert "jupyter/overrides.json5 .venv/share/jupyter/lab/settings/overrides.d/mlcraft.json5" in plan.stdout
    assert "jupyter/jupyter_server_config.json .venv/etc/jupyter/jupyter_server_config.json" in plan.stdout
    assert plan.stdout.rstrip().splitlines()[-1].endswith("course/00_orientation.ipynb")


def test_the_learners_readme_teaches_the_course_not_the_grader(exported: Path) -> None:
    """The instructor's README explains grading, its sandbox, the secret and the checks' limits;
    the learner's README lists the modules and how to work, and nothing of the rest."""
    readme = (exported / "README.md").read_text(encoding="utf-8")
    assert readme != (REPO / "README.md").read_text(encoding="utf-8")
    for module in MODULES:
        assert f"`{module}`" in readme, f"the module table lacks {module}"
    assert "make lab" in readme and "Validate" in readme and "make check" in readme
    for instructor_only in ("MLCRAFT_GRADING_SECRET", "grading_seed", "sandbox", "bwrap", "mlcraft grade", "mutant",
                            "export-learner", "solutions/", "hidden test", "make test", "--scheduler"):  # fmt: skip
        assert instructor_only.lower() not in readme.lower(), f"the learner's README mentions {instructor_only!r}"
