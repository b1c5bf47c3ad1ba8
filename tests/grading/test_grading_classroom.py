"""`grade_classroom` end to end on a tiny generated course and classroom."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from mlcraft.classroom.grading.classroom import GradeSettings, Status, SubmissionResult, grade_classroom

if TYPE_CHECKING:  # mypy knows tests/grading/conftest.py by its full module name
    from tests.grading.conftest import MODULE, write_classroom
else:  # pytest puts tests/grading on sys.path and imports the file as `conftest`
    from conftest import MODULE, write_classroom

pytestmark = pytest.mark.slow

# Results by student, and the output folder.
Graded = tuple[dict[str, SubmissionResult], Path]


@pytest.fixture(scope="module")
def graded(tiny_course: Path, tmp_path_factory: pytest.TempPathFactory) -> Graded:
    tmp_path = tmp_path_factory.mktemp("classroom")
    classroom = write_classroom(tmp_path / "class", tiny_course)
    out = tmp_path / "out"
    results = grade_classroom(classroom, tiny_course, out, settings=GradeSettings(cell_timeout_s=30, workers=2))
    return {r.student: r for r in results}, out


def test_every_submission_gets_the_right_status_and_score(graded: Graded) -> None:
    results, _ = graded
    assert sorted(results) == ["blank", "correct", "invalid", "missing", "partial"]
    expected = {
        "correct": (Status.GRADED, 3.0),
        "partial": (Status.GRADED, 1.0),  # hidden add test fails, mul passes
        "blank": (Status.GRADED, 0.0),
        "invalid": (Status.INVALID, 0.0),
        "missing": (Status.MISSING, 0.0),
    }
    for student, (status, score) in expected.items():
        assert (results[student].status, results[student].score) == (status, score), student
        assert results[student].max_score == 3.0, student
    assert results["partial"].cells == {"test-add": (0.0, 2.0), "test-mul": (1.0, 1.0)}
    assert "not valid JSON" in results["invalid"].detail
    assert "found Untitled.ipynb" in results["missing"].detail


def test_reports_and_feedback_are_written(graded: Graded) -> None:
    results, out = graded
    rows = list(csv.DictReader((out / "grades.csv").open(encoding="utf-8")))
    assert [(r["student"], r["status"], r["score"]) for r in rows] == [
        ("blank", "graded", "0"),
        ("correct", "graded", "3"),
        ("invalid", "invalid notebook", "0"),
        ("missing", "missing", "0"),
        ("partial", "graded", "1"),
    ]
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert {r["student"]: r["status"] for r in report}["invalid"] == "invalid notebook"
    for student in ("blank", "correct", "partial"):
        html = Path(results[student].feedback)
        assert html.is_file() and html.stat().st_size > 0, student
        assert out in html.parents
    assert results["invalid"].feedback == ""


def test_bad_input_is_rejected_with_a_clear_message(tiny_course: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such folder"):
        grade_classroom(tmp_path / "nope", tiny_course, tmp_path / "out")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no student folders"):
        grade_classroom(empty, tiny_course, tmp_path / "out")
    (empty / "ann" / "00_elsewhere").mkdir(parents=True)
    with pytest.raises(ValueError, match="no student folder holds a known module"):
        grade_classroom(empty, tiny_course, tmp_path / "out")
    with pytest.raises(ValueError, match="unknown module 42_nope"):
        grade_classroom(empty, tiny_course, tmp_path / "out", modules=["42_nope"])
    with pytest.raises(ValueError, match="inside the submissions folder"):
        grade_classroom(empty, tiny_course, empty / "out", modules=[MODULE])


def test_student_folder_with_unsafe_name_is_reported_not_graded(tiny_course: Path, tmp_path: Path) -> None:
    classroom = tmp_path / "class"
    (classroom / "bad name" / MODULE).mkdir(parents=True)
    (classroom / "bad name" / MODULE / f"{MODULE}.ipynb").write_text("{}", encoding="utf-8")
    [result] = grade_classroom(classroom, tiny_course, tmp_path / "out")
    assert result.status is Status.ERROR
    assert "rename" in result.detail


def test_cli_grade_prints_a_table_writes_reports_and_flags_attention(
    tiny_course: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from mlcraft.classroom.cli import app

    classroom = write_classroom(tmp_path / "class", tiny_course)
    for student in ("blank", "partial", "missing"):
        shutil.rmtree(classroom / student)
    monkeypatch.setenv("MLCRAFT_COURSE_ROOT", str(tiny_course))
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["grade", str(classroom), "--out", str(out), "--cell-timeout", "30"])
    assert result.exit_code == 3, result.output  # graded, but one submission needs attention
    assert "correct" in result.output and "3 / 3" in result.output
    assert "invalid notebook" in result.output and "1 submission(s) need attention" in result.output
    rows = list(csv.DictReader((out / "grades.csv").open(encoding="utf-8")))
    assert [(r["student"], r["status"]) for r in rows] == [("correct", "graded"), ("invalid", "invalid notebook")]


def test_without_a_sandbox_grading_works_and_says_so_once(
    tiny_course: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from mlcraft.classroom.cli import app

    classroom = write_classroom(tmp_path / "class", tiny_course)
    for student in ("blank", "partial", "missing", "invalid"):
        shutil.rmtree(classroom / student)
    monkeypatch.setenv("MLCRAFT_COURSE_ROOT", str(tiny_course))
    out = tmp_path / "out"
    args = ["grade", str(classroom), "--out", str(out), "--cell-timeout", "30", "--sandbox", "off"]
    result = CliRunner().invoke(app, args, terminal_width=300)
    assert result.exit_code == 0, result.output
    assert result.output.count("WITHOUT a sandbox") == 1, result.output
    [row] = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert (row["status"], row["score"], row["flags"]) == ("graded", 3.0, ["no sandbox"])
