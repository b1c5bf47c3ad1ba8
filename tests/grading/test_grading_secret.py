"""Hidden-test inputs chosen by the instructor's secret (``MLCRAFT_GRADING_SECRET``).

:func:`grading_seed` must give the default seed without a secret and another, stable one per
name and secret with it; every assignment whose hidden tests use it must still give the
reference solution and each alternative full marks, and the blank release zero, on the inputs
a secret chooses.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from mlcraft.classroom.grading.classroom import GradeSettings, Status
from mlcraft.classroom.grading.paths import list_modules
from mlcraft.classroom.grading.validity import grade_variants, load_variants
from mlcraft.classroom.testing import grading_seed
from mlcraft.classroom.testing.seeds import SECRET_ENV, SECRET_FILE_ENV

REPO = Path(__file__).resolve().parents[2]
SECRET_MODULES = [
    m for m in list_modules(REPO / "solutions") if "grading_seed(" in (REPO / "solutions" / m / f"{m}.py").read_text()
]


def test_without_a_secret_the_default_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SECRET_ENV, raising=False)
    monkeypatch.delenv(SECRET_FILE_ENV, raising=False)
    assert grading_seed("test-a", 7) == 7


def test_a_secret_chooses_a_stable_seed_per_name(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(SECRET_ENV, "first secret")
    a, b = grading_seed("test-a", 7), grading_seed("test-b", 7)
    assert a != 7 and a != b and a == grading_seed("test-a", 0), "the seed depends on the name, not the default"
    assert 0 <= a < 2**32
    monkeypatch.setenv(SECRET_ENV, "second secret")
    assert grading_seed("test-a", 7) != a
    monkeypatch.delenv(SECRET_ENV)
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text("first secret\n", encoding="utf-8")
    monkeypatch.setenv(SECRET_FILE_ENV, str(secret_file))
    assert grading_seed("test-a", 7) == a, "the file holds the same secret (its final newline ignored)"


@pytest.mark.parametrize("content", [None, ""])
def test_an_unreadable_or_empty_secret_file_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, content: str | None
) -> None:
    monkeypatch.delenv(SECRET_ENV, raising=False)
    path = tmp_path / "secret.txt"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    monkeypatch.setenv(SECRET_FILE_ENV, str(path))
    with pytest.raises(RuntimeError, match=SECRET_FILE_ENV):
        grading_seed("test-a", 7)


def test_some_assignment_draws_its_hidden_inputs_from_the_secret() -> None:
    assert SECRET_MODULES, "no assignment uses grading_seed in its hidden tests"


@pytest.mark.slow
@pytest.mark.parametrize("module", SECRET_MODULES)
def test_answers_keep_full_marks_on_inputs_a_secret_chooses(
    module: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, secrets.token_hex(16))
    monkeypatch.setenv("MLCRAFT_GRADING_DIR", str(tmp_path / "grading-home"))
    alternatives = [v for v in load_variants(REPO / "tests" / "assignments" / module) if v.kind == "alternative"]
    settings = GradeSettings(cell_timeout_s=120, submission_timeout_s=600, workers=2, feedback=False)
    results = grade_variants(REPO, module, alternatives, tmp_path / module, settings)
    for name, result in results.items():
        assert result.status is Status.GRADED, f"{name}: {result.status.value} {result.detail}"
        expected = 0 if name == "blank" else result.max_score
        assert result.score == expected, f"{name}: {result.score}/{result.max_score} {result.cells}"
