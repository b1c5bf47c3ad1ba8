from __future__ import annotations

from pathlib import Path

import pytest

from mlcraft.classroom.grading.paths import (
    CourseLayoutError,
    find_course_root,
    grading_dir,
    list_modules,
    nbgrader_ignore_patterns,
)

REPO = Path(__file__).resolve().parents[2]


def test_course_root_is_found_from_any_subfolder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLCRAFT_COURSE_ROOT", raising=False)
    assert find_course_root(REPO / "src" / "mlcraft" / "classroom" / "grading") == REPO
    assert find_course_root(REPO) == REPO


def test_course_root_errors_name_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLCRAFT_COURSE_ROOT", raising=False)
    with pytest.raises(CourseLayoutError, match="MLCRAFT_COURSE_ROOT"):
        find_course_root(tmp_path)
    monkeypatch.setenv("MLCRAFT_COURSE_ROOT", str(tmp_path))
    with pytest.raises(CourseLayoutError, match="has no solutions/ folder"):
        find_course_root()
    (tmp_path / "solutions").mkdir()
    assert find_course_root(REPO) == tmp_path.resolve()


def test_grading_dir_is_outside_the_repo_and_configurable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLCRAFT_GRADING_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert grading_dir() == (tmp_path / "data" / "mlcraft" / "grading").resolve()
    monkeypatch.setenv("MLCRAFT_GRADING_DIR", str(tmp_path / "g"))
    assert grading_dir() == (tmp_path / "g").resolve()


def test_modules_and_ignore_patterns(tmp_path: Path) -> None:
    for name in ("00_intro", "01_loops", "notes", "02_empty"):
        (tmp_path / name).mkdir()
    for name in ("00_intro", "01_loops"):
        (tmp_path / name / f"{name}.ipynb").write_text("{}", encoding="utf-8")
    (tmp_path / "notes" / "notes.ipynb").write_text("{}", encoding="utf-8")
    assert list_modules(tmp_path) == ["00_intro", "01_loops"]
    assert list_modules(tmp_path / "absent") == []
    patterns = nbgrader_ignore_patterns(tmp_path)
    assert {"00_intro.py", "01_loops.py", ".ipynb_checkpoints", "__pycache__"} <= set(patterns)
    assert "helpers.py" not in patterns  # only the twins, not every .py
