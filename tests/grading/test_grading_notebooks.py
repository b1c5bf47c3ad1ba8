"""The hygiene checks find each kind of problem (and nothing on clean input)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import jupytext
import nbformat
import pytest

from mlcraft.classroom.grading.notebooks import (
    InvalidNotebookError,
    check_no_outputs,
    check_release_leaks,
    check_twins_in_sync,
    read_notebook,
    strip_solution_markers,
)

if TYPE_CHECKING:  # mypy knows tests/grading/conftest.py by its full module name
    from tests.grading.conftest import MODULE, TINY_SOURCE
else:  # pytest puts tests/grading on sys.path and imports the file as `conftest`
    from conftest import MODULE, TINY_SOURCE


def _pair(folder: Path, text: str = TINY_SOURCE) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    py, ipynb = folder / "lesson.py", folder / "lesson.ipynb"
    py.write_text(text, encoding="utf-8")
    jupytext.write(jupytext.reads(text, fmt="py:percent"), ipynb)
    return py, ipynb


def test_read_notebook_reports_json_and_schema_errors(tmp_path: Path) -> None:
    bad_json = tmp_path / "a.ipynb"
    bad_json.write_text('{"cells": [1,', encoding="utf-8")
    with pytest.raises(InvalidNotebookError, match=r"not valid JSON .* line 1"):
        read_notebook(bad_json)
    not_nb = tmp_path / "b.ipynb"
    not_nb.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(InvalidNotebookError, match="not a notebook"):
        read_notebook(not_nb)
    bad_schema = tmp_path / "c.ipynb"
    bad_schema.write_text(
        json.dumps({"cells": [{"cell_type": "code"}], "nbformat": 4, "nbformat_minor": 5, "metadata": {}})
    )
    with pytest.raises(InvalidNotebookError, match="not a valid notebook"):
        read_notebook(bad_schema)


def test_twins_in_sync_and_out_of_sync(tmp_path: Path) -> None:
    py, ipynb = _pair(tmp_path / "course")
    assert check_twins_in_sync(tmp_path / "course") == []
    py.write_text(TINY_SOURCE.replace("a + b", "a - b"), encoding="utf-8")
    [problem] = check_twins_in_sync(tmp_path / "course")
    assert "out of sync" in problem and "make sync" in problem
    ipynb.unlink()
    [problem] = check_twins_in_sync(tmp_path / "course")
    assert "no paired notebook" in problem


def test_changed_nbgrader_metadata_is_out_of_sync(tmp_path: Path) -> None:
    py, _ = _pair(tmp_path / "s")
    py.write_text(TINY_SOURCE.replace('"points": 2', '"points": 5'), encoding="utf-8")
    assert len(check_twins_in_sync(tmp_path / "s")) == 1


def test_outputs_execution_counts_and_timestamps_are_found(tmp_path: Path) -> None:
    _, ipynb = _pair(tmp_path)
    assert check_no_outputs([ipynb]) == []
    nb = nbformat.read(ipynb, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    code[0].outputs = [nbformat.v4.new_output("stream", name="stdout", text="hi")]
    code[1].execution_count = 3
    code[2].metadata["execution"] = {"iopub.execute_input": "2026-01-01T00:00:00Z"}
    nbformat.write(nb, ipynb)
    problems = check_no_outputs([ipynb])
    assert len(problems) == 3
    assert any("outputs" in p for p in problems) and any("execution count" in p for p in problems)
    assert any("timestamps" in p for p in problems)


def test_strip_solution_markers_keeps_the_answer() -> None:
    source = "def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION"
    assert strip_solution_markers(source) == "def f():\n    return 1"


@pytest.fixture
def released(tiny_course: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A writable copy of the tiny course's solutions and release."""
    source, release = tmp_path / "solutions", tmp_path / "exercises"
    shutil.copytree(tiny_course / "solutions", source)
    shutil.copytree(tiny_course / "exercises", release)
    return source, release


def test_clean_release_has_no_leaks(released: tuple[Path, Path]) -> None:
    source, release = released
    assert check_release_leaks(source, release, [MODULE]) == []


def test_leaked_twin_marker_and_solution_line_are_found(released: tuple[Path, Path]) -> None:
    source, release = released
    shutil.copy(source / MODULE / f"{MODULE}.py", release / MODULE / f"{MODULE}.py")
    (release / MODULE / "notes.txt").write_text("extra", encoding="utf-8")
    nb = nbformat.read(release / MODULE / f"{MODULE}.ipynb", as_version=4)
    answer = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "add-answer")
    answer.source = "def add(a, b):\n    total_of_both_numbers = a + b\n    return total_of_both_numbers"
    test = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "test-add")
    test.source += "\n### BEGIN HIDDEN TESTS\n"
    nbformat.write(nb, release / MODULE / f"{MODULE}.ipynb")
    problems = "\n".join(check_release_leaks(source, release, [MODULE]))
    assert "a .py file in the release" in problems
    assert "notes.txt: not in" in problems
    assert "BEGIN HIDDEN TESTS" in problems
    assert "total_of_both_numbers = a + b" in problems


def test_hidden_test_line_in_release_is_a_leak(released: tuple[Path, Path]) -> None:
    source, release = released
    nb = nbformat.read(release / MODULE / f"{MODULE}.ipynb", as_version=4)
    test = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "test-add")
    test.source += '\nassert add(-5, 5) == 0, "hidden: add(-5, 5) should be 0"'
    nbformat.write(nb, release / MODULE / f"{MODULE}.ipynb")
    [problem] = check_release_leaks(source, release, [MODULE])
    assert "hidden: add(-5, 5)" in problem


def test_missing_release_is_reported(released: tuple[Path, Path]) -> None:
    source, release = released
    shutil.rmtree(release / MODULE)
    [problem] = check_release_leaks(source, release, [MODULE])
    assert "missing" in problem


def test_a_line_used_both_visibly_and_in_hidden_tests_is_not_a_secret() -> None:
    from mlcraft.classroom.grading.notebooks import _secret_lines

    source = (
        "with tempfile.TemporaryDirectory() as folder:\n"
        "    check_visible(folder)\n"
        "### BEGIN HIDDEN TESTS\n"
        "with tempfile.TemporaryDirectory() as folder:\n"
        "    check_hidden_thoroughly(folder, seed=123)\n"
        "### END HIDDEN TESTS"
    )
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    assert _secret_lines(nb) == {"check_hidden_thoroughly(folder, seed=123)"}
