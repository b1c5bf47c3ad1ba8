"""A tiny throwaway course (no torch, so kernels start fast) for testing the grading tools."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import jupytext
import nbformat
import pytest

REPO = Path(__file__).resolve().parents[2]
MODULE = "90_tiny"

TINY_SOURCE = """# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Tiny assignment


# %% nbgrader={"grade": false, "grade_id": "add-answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def add(a, b):
    ### BEGIN SOLUTION
    total_of_both_numbers = a + b
    return total_of_both_numbers
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-add", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
assert add(1, 2) == 3, "add(1, 2) should be 3"
### BEGIN HIDDEN TESTS
assert add(-5, 5) == 0, "hidden: add(-5, 5) should be 0"
### END HIDDEN TESTS


# %% nbgrader={"grade": false, "grade_id": "mul-answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def mul(a, b):
    ### BEGIN SOLUTION
    return a * b
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-mul", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
assert mul(2, 3) == 6
"""

ANSWERS = {
    "correct": {"add-answer": "def add(a, b):\n    return a + b\n", "mul-answer": "def mul(a, b):\n    return a * b\n"},
    # passes the visible add test, fails the hidden one
    "partial": {"add-answer": "def add(a, b):\n    return 3\n", "mul-answer": "def mul(a, b):\n    return a * b\n"},
}


@pytest.fixture(scope="module")
def tiny_course(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A course root with nbgrader_config.py and one assignment, released into exercises/."""
    from mlcraft.classroom.grading.release import release

    tmp_path = tmp_path_factory.mktemp("tiny")
    root = tmp_path / "course"
    source = root / "solutions" / MODULE
    source.mkdir(parents=True)
    shutil.copy(REPO / "nbgrader_config.py", root / "nbgrader_config.py")
    shutil.copy(REPO / "solutions" / "jupytext.toml", root / "solutions" / "jupytext.toml")
    (source / f"{MODULE}.py").write_text(TINY_SOURCE, encoding="utf-8")
    jupytext.write(jupytext.reads(TINY_SOURCE, fmt="py:percent"), source / f"{MODULE}.ipynb")
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("MLCRAFT_GRADING_DIR", str(tmp_path / "grading"))
        monkeypatch.delenv("MLCRAFT_COURSE_ROOT", raising=False)
        release(root, [MODULE])
        yield root


def answered(release_nb: Path, answers: dict[str, str]) -> nbformat.NotebookNode:
    """The released notebook with its solution cells replaced by ``answers`` (grade_id -> source)."""
    nb: nbformat.NotebookNode = nbformat.read(release_nb, as_version=4)
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in answers:
            cell.source = answers[grade_id]
    return nb


def write_classroom(root: Path, course: Path) -> Path:
    """correct / partial / blank / invalid (broken JSON) / missing (wrong file name) students."""
    release_nb = course / "exercises" / MODULE / f"{MODULE}.ipynb"
    for student, answers in ANSWERS.items():
        target = root / student / MODULE / f"{MODULE}.ipynb"
        target.parent.mkdir(parents=True)
        nbformat.write(answered(release_nb, answers), target)
    (root / "blank" / MODULE).mkdir(parents=True)
    shutil.copy(release_nb, root / "blank" / MODULE / f"{MODULE}.ipynb")
    (root / "invalid" / MODULE).mkdir(parents=True)
    (root / "invalid" / MODULE / f"{MODULE}.ipynb").write_text('{"cells": [', encoding="utf-8")
    (root / "missing" / MODULE).mkdir(parents=True)
    (root / "missing" / MODULE / "Untitled.ipynb").write_text("{}", encoding="utf-8")
    return root
