"""Grading validity for every assignment: the autograder must tell right from wrong.

For each module with a source in ``solutions/``, ``tests/assignments/<module>/`` holds at least
four mutants (plausible mistakes, each declaring the test cells it must fail) and at least four
alternative correct implementations. The reference solution, the blank release and every hostile
mutant (an attack on the grader) are graded once per module with the real pipeline
(`grade_classroom`: sandbox, limits, tamper checks); the other variants run the same tests in warm
kernels (`run_variants`), which gives the same verdicts in a fraction of the time.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mlcraft.classroom.grading.classroom import SCORED, GradeSettings, Status, SubmissionResult
from mlcraft.classroom.grading.mutate import Outcome
from mlcraft.classroom.grading.paths import list_modules
from mlcraft.classroom.grading.validity import Variant, grade_variants, load_variants, run_variants

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
MODULES = list_modules(REPO / "solutions")
VARIANTS = {m: load_variants(REPO / "tests" / "assignments" / m) for m in MODULES}
CASES = [(m, v) for m in MODULES for v in VARIANTS[m]]


class _Graded:
    """Each module's classroom of variants, graded once, when a test first asks for it (so
    ``-k 02_attention`` grades one module)."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.results: dict[str, dict[str, SubmissionResult | Outcome]] = {}

    def __getitem__(self, module: str) -> dict[str, SubmissionResult | Outcome]:
        if module not in self.results:
            hostile = [v for v in VARIANTS[module] if v.hostile]
            with pytest.MonkeyPatch.context() as monkeypatch:
                monkeypatch.setenv("MLCRAFT_GRADING_DIR", str(self.work / "grading-home"))
                # Scores are what this harness checks; feedback HTML is tested in test_grading_classroom.py.
                settings = GradeSettings(cell_timeout_s=120, submission_timeout_s=600, workers=2, feedback=False)
                results: dict[str, SubmissionResult | Outcome] = dict(
                    grade_variants(REPO, module, hostile, self.work / module, settings)
                )
            results.update(run_variants(REPO, module, [v for v in VARIANTS[module] if not v.hostile], jobs=2))
            self.results[module] = results
        return self.results[module]


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> _Graded:
    return _Graded(tmp_path_factory.mktemp("validity"))


def _summary(result: SubmissionResult | Outcome) -> str:
    if isinstance(result, Outcome):
        return f"{result.status}: failed {list(result.failed)}, first {result.test} ({result.detail})"
    return f"{result.status.value} {result.score:g}/{result.max_score:g} {result.cells} {result.detail}"


def test_there_is_at_least_one_module() -> None:
    assert MODULES, "no assignment sources found under solutions/"


@pytest.mark.parametrize("module", MODULES)
def test_every_assignment_has_mutants_and_an_alternative(module: str) -> None:
    kinds = [v.kind for v in VARIANTS[module]]
    assert kinds.count("mutant") >= 4, f"{module}: needs at least 4 mutants under tests/assignments/{module}/mutants"
    assert kinds.count("alternative") >= 4, (
        f"{module}: needs four alternatives (written from the statement alone) under tests/assignments/{module}/alternatives"
    )


@pytest.mark.parametrize("module", MODULES)
def test_solution_scores_full_marks(graded: _Graded, module: str) -> None:
    result = graded[module]["solution"]
    assert isinstance(result, SubmissionResult)
    assert result.status is Status.GRADED, _summary(result)
    assert result.max_score > 0 and result.score == result.max_score, _summary(result)


@pytest.mark.parametrize("module", MODULES)
def test_blank_release_scores_zero_on_every_autograded_cell(graded: _Graded, module: str) -> None:
    result = graded[module]["blank"]
    assert isinstance(result, SubmissionResult)
    assert result.status is Status.GRADED, _summary(result)
    assert result.cells, "no graded cells recorded"
    assert all(score == 0 for score, _ in result.cells.values()), _summary(result)


@pytest.mark.parametrize(("module", "variant"), CASES, ids=[f"{m}-{v.student}" for m, v in CASES])
def test_variant(graded: _Graded, module: str, variant: Variant) -> None:
    result = graded[module][variant.student]
    if isinstance(result, Outcome):  # run in a warm kernel
        if variant.kind == "alternative":
            assert result.status == "survived", f"a correct alternative failed a test: {_summary(result)}"
            return
        assert result.status != "survived", f"mutant '{variant.description}' passed every test: {_summary(result)}"
        if result.status == "killed":  # a hang or a dead kernel loses every cell after it
            missed = [cell for cell in variant.must_fail if cell not in result.failed]
            assert not missed, f"{variant.name} should fail {missed}: {_summary(result)}"
        return
    # A mutant may hang or crash (status timeout / crashed); it only ever changes answer cells.
    expected = (Status.GRADED,) if variant.kind == "alternative" else tuple(s for s in SCORED if s != Status.TAMPERED)
    assert result.status in expected, _summary(result)
    if variant.kind == "alternative":
        assert result.score == result.max_score, f"a correct alternative lost points: {_summary(result)}"
        return
    assert result.score < result.max_score, f"mutant '{variant.description}' kept full marks: {_summary(result)}"
    for cell in variant.must_fail:
        assert cell in result.cells, f"{variant.name} names unknown test cell {cell}"
        assert result.cells[cell][0] == 0, f"{variant.name} should fail {cell}: {_summary(result)}"
