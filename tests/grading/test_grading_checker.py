"""`check_notebook` scores graded cells exactly as nbgrader autograde does."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import nbformat
import pytest

from mlcraft.classroom.grading.checker import check_notebook
from mlcraft.classroom.grading.notebooks import InvalidNotebookError

if TYPE_CHECKING:  # mypy knows tests/grading/conftest.py by its full module name
    from tests.grading.conftest import ANSWERS, MODULE, answered
else:  # pytest puts tests/grading on sys.path and imports the file as `conftest`
    from conftest import ANSWERS, MODULE, answered

pytestmark = pytest.mark.slow


def _write(nb: nbformat.NotebookNode, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def test_correct_answers_pass_visible_tests(tiny_course: Path, tmp_path: Path) -> None:
    release_nb = tiny_course / "exercises" / MODULE / f"{MODULE}.ipynb"
    path = _write(answered(release_nb, ANSWERS["correct"]), tmp_path / "nb.ipynb")
    before = path.read_bytes()
    report = check_notebook(path, timeout=30)
    assert [(c.grade_id, c.points, c.max_points, c.passed) for c in report.cells] == [
        ("test-add", 2.0, 2.0, True),
        ("test-mul", 1.0, 1.0, True),
    ]
    assert report.passed and report.score == 3.0 and report.max_score == 3.0
    assert path.read_bytes() == before, "check must not modify the learner's file"


def test_blank_release_fails_every_cell_and_names_the_error(tiny_course: Path, tmp_path: Path) -> None:
    path = tmp_path / "blank.ipynb"
    shutil.copy(tiny_course / "exercises" / MODULE / f"{MODULE}.ipynb", path)
    report = check_notebook(path, timeout=30)
    assert [c.points for c in report.cells] == [0.0, 0.0]
    assert not report.passed
    assert all("NotImplementedError" in c.error for c in report.cells)


def test_stderr_in_a_test_cell_keeps_its_points_and_edited_locked_cells_are_flagged(
    tiny_course: Path, tmp_path: Path
) -> None:
    release_nb = tiny_course / "exercises" / MODULE / f"{MODULE}.ipynb"
    answers = {
        "add-answer": "import sys\ndef add(a, b):\n    print('debug', file=sys.stderr)\n    return a + b\n",
        "mul-answer": "def mul(a, b):\n    return a * b\n",
    }
    nb = answered(release_nb, answers)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "test-mul":
            cell.source = "pass  # tests removed"
    report = check_notebook(_write(nb, tmp_path / "nb.ipynb"), timeout=30)
    by_id = {c.grade_id: c for c in report.cells}
    assert by_id["test-add"].points == 2.0 and by_id["test-add"].error == ""  # a warning is not a failure
    assert by_id["test-mul"].edited_locked is True
    assert by_id["test-add"].edited_locked is False


def test_a_cell_that_hangs_is_stopped(tiny_course: Path, tmp_path: Path) -> None:
    release_nb = tiny_course / "exercises" / MODULE / f"{MODULE}.ipynb"
    answers = {**ANSWERS["correct"], "add-answer": "import time\ntime.sleep(30)\n"}
    report = check_notebook(_write(answered(release_nb, answers), tmp_path / "nb.ipynb"), timeout=2)
    assert "longer than 2 s" in report.aborted
    assert not report.passed


def test_missing_and_invalid_notebooks_raise(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such notebook"):
        check_notebook(tmp_path / "absent.ipynb")
    broken = tmp_path / "broken.ipynb"
    broken.write_text('{"cells": [', encoding="utf-8")
    with pytest.raises(InvalidNotebookError, match="not valid JSON"):
        check_notebook(broken)
