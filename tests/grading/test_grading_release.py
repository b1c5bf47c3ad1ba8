"""Release generation: deterministic, leak-free, never paired, and stale releases are caught."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from mlcraft.classroom.grading.release import check_release, release, resolve_modules

if TYPE_CHECKING:  # mypy knows tests/grading/conftest.py by its full module name
    from tests.grading.conftest import MODULE
else:  # pytest puts tests/grading on sys.path and imports the file as `conftest`
    from conftest import MODULE

pytestmark = pytest.mark.slow


@pytest.fixture
def course(tiny_course: Path, tmp_path: Path) -> Path:
    root = tmp_path / "course"
    shutil.copytree(tiny_course, root)
    return root


def test_release_is_byte_deterministic_and_clean(course: Path) -> None:
    released = course / "exercises" / MODULE / f"{MODULE}.ipynb"
    first = released.read_bytes()
    release(course, [MODULE])
    assert released.read_bytes() == first
    assert sorted(p.name for p in released.parent.iterdir()) == [f"{MODULE}.ipynb"], "the .py twin must not be copied"
    nb = json.loads(first)
    assert "jupytext" not in nb["metadata"], "a released notebook must never be paired"
    text = first.decode()
    assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text
    assert "raise NotImplementedError()" in text
    assert check_release(course, [MODULE]) == []


def test_stale_or_edited_release_is_reported(course: Path) -> None:
    released = course / "exercises" / MODULE / f"{MODULE}.ipynb"
    released.write_text(
        released.read_text(encoding="utf-8").replace("Tiny assignment", "Edited by hand"), encoding="utf-8"
    )
    (course / "exercises" / MODULE / "stray.txt").write_text("x", encoding="utf-8")
    problems = "\n".join(check_release(course, [MODULE]))
    assert "differs from a fresh release" in problems
    assert "stray.txt: not in a fresh release" in problems


def test_release_syncs_the_twin_first(course: Path) -> None:
    py = course / "solutions" / MODULE / f"{MODULE}.py"
    py.write_text(
        py.read_text(encoding="utf-8").replace("# # Tiny assignment", "# # Tiny assignment, revised"), encoding="utf-8"
    )
    release(course, [MODULE])
    text = (course / "exercises" / MODULE / f"{MODULE}.ipynb").read_text(encoding="utf-8")
    assert "Tiny assignment, revised" in text


def test_unknown_module_lists_the_known_ones(course: Path) -> None:
    with pytest.raises(ValueError, match=rf"unknown module 99_nope; known modules: {MODULE}"):
        resolve_modules(course / "solutions", ["99_nope"])
    assert resolve_modules(course / "solutions", None) == [MODULE]
