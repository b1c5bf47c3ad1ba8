"""``mlcraft mutate``: the operators make the mistakes they promise, and the runner classifies
each mutant (killed, timeout, survived) the way the assignment's own tests would."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import jupytext
import pytest
from typer.testing import CliRunner

from mlcraft.classroom.cli import app
from mlcraft.classroom.grading.mutate import (
    EQUIVALENTS_FILE,
    MutationError,
    equivalents_stub,
    format_report,
    load_equivalents,
    run_mutation,
)
from mlcraft.classroom.grading.mutation_ops import OPERATORS, mutants_of, solution_lines

REPO = Path(__file__).resolve().parents[2]


def _changes(source: str, operator: str) -> list[str]:
    return [m.change for m in mutants_of(source) if m.operator == operator]


def _region(body: str) -> str:
    """A function whose body is the solution region."""
    lines = "\n".join(f"    {line}" for line in body.strip().splitlines())
    return f'def f(x, y=1):\n    """Doc 0 < 1."""\n    ### BEGIN SOLUTION\n{lines}\n    ### END SOLUTION\n'


# --- operators ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "operator", "expected"),
    [
        ("return x < y", "compare", "return x < y  ->  return x <= y"),
        ("return x >= y", "compare", "return x >= y  ->  return x > y"),
        ("return x == y", "compare", "return x == y  ->  return x != y"),
        ("return x is None", "compare", "return x is None  ->  return x is not None"),
        ("if x:\n    return 1\nreturn 2", "condition", "if x:  ->  if not x:"),
        ("return x - y", "arith", "return x - y  ->  return y - x"),
        ("z = x + 1e-12\nreturn z", "arith", "z = x + 1e-12  ->  z = x"),
        ("return x / y", "arith", "return x / y  ->  return x // y"),
        ("x += y\nreturn x", "augassign", "x += y  ->  x = y"),
        ("return -y", "unary", "return -y  ->  return y"),
        ("return x and y", "boolop", "return x and y  ->  return x or y"),
        ("return x + 3", "constant", "return x + 3  ->  return x + 4"),
        ("return x + 3", "constant", "return x + 3  ->  return x + 0"),
        (
            "return x.sum(dim=1, keepdim=True)",
            "constant",
            "return x.sum(dim=1, keepdim=True)  ->  return x.sum(dim=1, keepdim=False)",
        ),
        ("return x.sum(dim=1)", "keyword", "return x.sum(dim=1)  ->  return x.sum()"),
        ("return y.to(torch.float64)", "unwrap", "return y.to(torch.float64)  ->  return y"),
        ("return y.clone()", "unwrap", "return y.clone()  ->  return y"),
        ("return float(y)", "unwrap", "return float(y)  ->  return y"),
        ("return x.squeeze(1)", "dim", "return x.squeeze(1)  ->  return x.squeeze()"),
        ("return torch.where(x, y, 0)", "swap-args", "return torch.where(x, y, 0)  ->  return torch.where(y, x, 0)"),
        ("return x.amax(dim=0)", "rename", "return x.amax(dim=0)  ->  return x.amin(dim=0)"),
        (
            "return torch.zeros(3, dtype=torch.float64)",
            "rename",
            "return torch.zeros(3, dtype=torch.float64)  ->  return torch.ones(3, dtype=torch.float64)",
        ),
        (
            "return torch.zeros(3, dtype=torch.float64)",
            "rename",
            "return torch.zeros(3, dtype=torch.float64)  ->  return torch.zeros(3, dtype=torch.float32)",
        ),
        ("y = x * 2\nreturn y", "drop", "y = x * 2  ->  (removed)"),
        ("if x < 0:\n    raise ValueError('no')\nreturn x", "drop", "raise ValueError('no')  ->  pass"),
        ("raise ValueError('no')", "raise-type", "raise ValueError('no')  ->  raise RuntimeError('no')"),
        ("z = x * y\nreturn z", "return-input", "return z  ->  return x"),
        (
            "with torch.no_grad():\n    x.add_(1)\nreturn x",
            "unguard",
            "with torch.no_grad(): / x.add_(1)  ->  x.add_(1)",
        ),
        ("return x[1:]", "slice", "return x[1:]  ->  return x[:]"),
        ("return y[0]", "slice", "return y[0]  ->  return y"),
        (
            "return x == 'cpu' or x == 'cuda'",
            "string",
            "return x == 'cpu' or x == 'cuda'  ->  return x == 'cuda' or x == 'cuda'",
        ),
        ("z = x + 1\nreturn z * y", "variable", "return z * y  ->  return x * y"),
    ],
)
def test_each_operator_makes_its_mistake(body: str, operator: str, expected: str) -> None:
    found = _changes(_region(body), operator)
    assert expected in found, f"{operator} on {body!r}: expected {expected!r} among {found}"


def test_every_operator_is_exercised_by_the_table() -> None:
    table = test_each_operator_makes_its_mistake.pytestmark[0].args[1]  # type: ignore[attr-defined]
    assert {row[1] for row in table} == set(OPERATORS)


def test_only_the_solution_region_is_mutated() -> None:
    source = _region("return x < y")
    region = solution_lines(source)
    assert region == {4}, region
    for m in mutants_of(source):
        assert "Doc 0 < 1." in m.source, "the docstring must never change"
        assert m.source.startswith("def f(x, y=1):"), "the signature (defaults included) is the learner's stub"


def test_no_mutant_of_asserts_prints_annotations_or_fstrings() -> None:
    source = _region("assert x > 0, 'x'\nprint(x + 1)\nz: int = 3\nreturn f'{x + 1}'")
    changes = [m.change for m in mutants_of(source)]
    assert all("assert" not in c and "print" not in c for c in changes), changes
    assert not [c for c in changes if c.startswith("return f") and "return f" in c.split("->")[1]], changes
    assert [c for c in changes if c.startswith("z: int = 3")], "the assigned value is still mutated"
    assert all("z: float" not in c for c in changes)


def test_mutants_compile_are_distinct_and_differ_from_the_reference() -> None:
    source = _region("z = (x - y) / (x + y + 1e-9)\nif z > 0.5 and y != 0:\n    return z.clamp(0, 1)\nreturn -z")
    mutants = mutants_of(source)
    assert len(mutants) > 30
    reference = ast.unparse(ast.parse(source))
    texts = [m.source for m in mutants]
    assert len(set(texts)) == len(texts) and reference not in texts
    for m in mutants:
        compile(m.source, "<mutant>", "exec")
        assert m.diff.startswith("--- reference"), m.diff


def test_mutant_ids_do_not_move_when_other_lines_change() -> None:
    before = {m.key: m.change for m in mutants_of(_region("z = x * 2\nreturn z + y"))}
    after = {m.key: m.change for m in mutants_of(_region("w = 7\nz = x * 2\nreturn z + y"))}
    shared = {k for k, change in before.items() if "w" not in change}
    assert shared and shared <= set(after), sorted(shared - set(after))
    for key in shared:
        assert before[key] == after[key]


def test_a_cell_that_is_not_python_has_no_mutants() -> None:
    assert mutants_of("%%time\nx = = 1\n") == []


# --- the runner on a tiny course -----------------------------------------------------------------

MODULE = "91_mutants"
SOURCE = '''# %% [markdown]
# # Mutants

# %% nbgrader={"grade": false, "grade_id": "setup", "locked": true, "schema_version": 3, "solution": false, "task": false}
import math

# %% nbgrader={"grade": false, "grade_id": "clip-answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def clip01(x):
    """x limited to [0, 1]."""
    ### BEGIN SOLUTION
    if x < 0:
        return 0.0
    if x > 1:
        return 1.0
    return x
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "test-clip", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
assert clip01(-2.0) == 0.0
assert clip01(0.25) == 0.25
assert clip01(3.0) == 1.0

# %% nbgrader={"grade": false, "grade_id": "scale-answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
### BEGIN SOLUTION
FACTOR = 10 // 5


def scale(x):
    return x * FACTOR
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "test-scale", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
assert scale(3) == 6

# %% nbgrader={"grade": false, "grade_id": "count-answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def countdown(n):
    """The steps from n down to 0."""
    ### BEGIN SOLUTION
    steps = 0
    while n > 0:
        n -= 1
        steps += 1
    return steps
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "test-count", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
assert countdown(3) == 3
assert math.isclose(countdown(0), 0)
'''


@pytest.fixture(scope="module")
def course(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mutate") / "course"
    folder = root / "solutions" / MODULE
    folder.mkdir(parents=True)
    shutil.copy(REPO / "nbgrader_config.py", root / "nbgrader_config.py")
    jupytext.write(jupytext.reads(SOURCE, fmt="py:percent"), folder / f"{MODULE}.ipynb")
    (root / "tests" / "assignments" / MODULE).mkdir(parents=True)
    return root


@pytest.fixture(scope="module")
def report(course: Path):  # type: ignore[no-untyped-def]
    return run_mutation(course, MODULE, jobs=2, min_timeout_s=3, progress=False)


def test_boundary_mutants_survive_tests_without_boundary_inputs(report) -> None:  # type: ignore[no-untyped-def]
    survivors = {m.change for m in report.survivors}
    assert "if x < 0:  ->  if x <= 0:" in survivors, survivors
    assert "if x > 1:  ->  if x >= 1:" in survivors, survivors
    assert not report.ok


def test_wrong_results_are_killed_by_the_first_failing_test(report) -> None:  # type: ignore[no-untyped-def]
    by_change = {m.change: report.outcomes[m.id] for m in report.mutants}
    outcome = by_change["return 1.0  ->  return 2.0"]
    assert (outcome.status, outcome.test) == ("killed", "test-clip"), outcome
    assert "AssertionError" in outcome.detail


def test_a_mutant_that_never_ends_times_out_and_the_rest_still_run(report) -> None:  # type: ignore[no-untyped-def]
    by_change = {m.change: report.outcomes[m.id] for m in report.mutants}
    hung = by_change["n -= 1  ->  n += 1"]
    assert hung.status == "timeout", hung
    assert by_change["steps = 0  ->  steps = 1"].status == "killed"  # a later mutant, same cell
    assert all(o.status in ("killed", "timeout", "survived", "crashed") for o in report.outcomes.values())
    assert len(report.outcomes) == len(report.mutants)


def test_a_mutant_whose_cell_raises_is_not_tested_against_the_reference_functions(report) -> None:  # type: ignore[no-untyped-def]
    by_change = {m.change: report.outcomes[m.id] for m in report.mutants}
    broken = by_change["FACTOR = 10 // 5  ->  FACTOR = 10 // 0"]  # ZeroDivisionError: scale is never defined
    assert (broken.status, broken.test) == ("killed", "test-scale"), broken
    assert "NameError" in broken.detail, broken
    assert by_change["steps = 0  ->  steps = 1"].status == "killed"  # math, from the setup cell, is still there


def test_the_report_shows_the_table_and_each_survivors_diff(report) -> None:  # type: ignore[no-untyped-def]
    text = format_report(report)
    assert "clip-answer" in text and "count-answer" in text and "total" in text
    for m in report.survivors:
        assert f"SURVIVED {m.id}" in text
    assert "-    if x < 0:" in text and "+    if x <= 0:" in text


def test_listed_equivalents_pass_and_a_killed_listing_is_stale(course: Path, report) -> None:  # type: ignore[no-untyped-def]
    path = course / "tests" / "assignments" / MODULE / EQUIVALENTS_FILE
    stub = equivalents_stub(report.survivors).replace('reason = ""', 'reason = "boundary untested here"')
    killed = next(m for m in report.mutants if report.outcomes[m.id].status == "killed")
    stub += f'\n[[mutant]]\nid = "{killed.id}"\nreason = "wrongly listed"\n'
    path.write_text(stub, encoding="utf-8")
    try:
        listed = run_mutation(course, MODULE, jobs=2, min_timeout_s=3, progress=False)
        assert not listed.survivors
        assert [entry.id for entry, _ in listed.stale] == [killed.id]
        assert not listed.ok
        assert "LISTED AS EQUIVALENT BUT KILLED" in format_report(listed)
    finally:
        path.unlink()


def test_equivalents_need_a_reason(tmp_path: Path) -> None:
    path = tmp_path / EQUIVALENTS_FILE
    path.write_text('[[mutant]]\nid = "a/b/c"\nreason = ""\n', encoding="utf-8")
    with pytest.raises(MutationError, match="needs both an id and a reason"):
        load_equivalents(path)
    path.write_text("[[mutant]\n", encoding="utf-8")
    with pytest.raises(MutationError, match="not valid TOML"):
        load_equivalents(path)


def test_a_reference_that_fails_its_tests_is_refused(course: Path, tmp_path: Path) -> None:
    broken = tmp_path / "course"
    shutil.copytree(course, broken)
    folder = broken / "solutions" / MODULE
    text = SOURCE.replace("assert countdown(3) == 3", "assert countdown(3) == 4")
    jupytext.write(jupytext.reads(text, fmt="py:percent"), folder / f"{MODULE}.ipynb")
    with pytest.raises(MutationError, match="reference solution fails test-count"):
        run_mutation(broken, MODULE, jobs=1, progress=False)


def test_cli_fails_on_survivors_and_names_them(course: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLCRAFT_COURSE_ROOT", str(course))
    result = CliRunner().invoke(app, ["mutate", MODULE, "--cell", "clip-answer", "--jobs", "1", "--stub"])
    assert result.exit_code == 1, result.output
    assert "SURVIVED clip-answer/compare/" in result.output
    assert "count-answer" not in result.output.split("SURVIVED")[0].split("total")[0]
    assert '[[mutant]]\nid = "clip-answer/compare/' in result.output
    listed = CliRunner().invoke(app, ["mutate", MODULE, "--list"])
    assert listed.exit_code == 0 and "count-answer/augassign/" in listed.output
    unknown = CliRunner().invoke(app, ["mutate", "nope"])
    assert unknown.exit_code == 2 and "no assignment nope" in unknown.output
    bad_cell = CliRunner().invoke(app, ["mutate", MODULE, "--cell", "nope"])
    assert bad_cell.exit_code == 1 and "has no answer cell nope" in bad_cell.output
