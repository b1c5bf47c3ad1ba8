"""Grading validity: does an assignment's autograder tell right from wrong?

For one module it builds a classroom of known answers and grades it with the real pipeline
(:func:`mlcraft.classroom.grading.classroom.grade_classroom`):

- ``solution``: the reference answers (source solution cells without their markers);
- ``blank``: the learner release as shipped;
- ``mutant-<name>``: the reference with one plausible mistake
  (``tests/assignments/<module>/mutants/<grade_id>/<name>.py``, filed under the answer cell it
  breaks);
- ``alt-<name>``: a different but correct implementation (``.../alternatives``).

:func:`run_variants` runs the same tests against variants much faster, in warm kernels without the
sandbox (the mutation runner of :mod:`mlcraft.classroom.grading.mutate`: the notebook runs once per
worker, then each variant's cells and the tests after them). The answer cells still run in a kernel
and the test cells in the grader's judge, so a verdict is the one grading gives, except for what
only the sandbox and the tamper checks see: submissions that attack the grader (``hostile`` in the
file name) go through :func:`grade_variants`.

A variant file is Python text: a docstring saying what it is, for mutants a line
``# fails: test-a, test-b`` naming the test cells its mistake must fail, then sections that
each start with ``# %% grade_id=<solution cell id>`` followed by that cell's full replacement
source. Cells a variant does not name keep the reference answer.
"""

from __future__ import annotations

import ast
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from mlcraft.classroom.grading.classroom import GradeSettings, SubmissionResult, grade_classroom
from mlcraft.classroom.grading.mutate import Mutant, Outcome, _run_workers
from mlcraft.classroom.grading.notebooks import read_notebook, strip_solution_markers

__all__ = ["Variant", "build_submission", "grade_variants", "load_variant", "load_variants", "run_variants"]

_SECTION = re.compile(r"^# %% grade_id=(?P<id>[A-Za-z0-9_.-]+)\s*$", re.MULTILINE)
_FAILS = re.compile(r"^# fails:(?P<ids>.*)$", re.MULTILINE)


@dataclass(frozen=True)
class Variant:
    """A known answer to an assignment: a mutant (must lose points) or an alternative (full marks)."""

    name: str
    kind: str  # "mutant" or "alternative"
    description: str
    overrides: dict[str, str]
    must_fail: tuple[str, ...] = field(default=())

    @property
    def student(self) -> str:
        prefix = "mutant" if self.kind == "mutant" else "alt"
        return f"{prefix}-{self.name}"

    @property
    def hostile(self) -> bool:
        """An attack on the grader: only the real pipeline (sandbox, tamper checks) judges it."""
        return "hostile" in self.name


def load_variant(path: Path, kind: str) -> Variant:
    """Parse a mutant or alternative file.

    Raises:
        ValueError: when the file has no sections, a mutant declares no failing test cell, or
            an alternative declares one.
    """
    text = path.read_text(encoding="utf-8")
    matches = list(_SECTION.finditer(text))
    if not matches:
        raise ValueError(f"{path}: no '# %% grade_id=<id>' section; see mlcraft.classroom.grading.validity")
    header = text[: matches[0].start()]
    overrides = {}
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        overrides[match["id"]] = text[match.end() : end].strip("\n") + "\n"
    fails = _FAILS.search(header)
    must_fail = tuple(i.strip() for i in fails["ids"].split(",") if i.strip()) if fails else ()
    if kind == "mutant" and not must_fail:
        raise ValueError(f"{path}: a mutant must declare '# fails: <test cell ids>'")
    if kind == "alternative" and must_fail:
        raise ValueError(f"{path}: an alternative is correct and must not declare '# fails:'")
    try:
        description = ast.get_docstring(ast.parse(header)) or ""
    except SyntaxError:
        description = ""
    return Variant(path.stem, kind, description.strip(), overrides, must_fail)


def load_variants(folder: Path) -> list[Variant]:
    """Every mutant (``folder/mutants/<grade_id>/*.py``) and alternative (``folder/alternatives/*.py``).

    Raises:
        ValueError: for a mutant outside a ``<grade_id>`` folder, one whose folder names a cell it
            does not replace, or two variants of the same name.
    """
    mutants = folder / "mutants"
    loose = sorted(p.name for p in mutants.glob("*.py"))
    if loose:
        raise ValueError(f"{mutants}: file each mutant under the answer cell it breaks (mutants/<grade_id>/): {loose}")
    variants = []
    for path in sorted(mutants.glob("*/*.py")):
        variant = load_variant(path, "mutant")
        if path.parent.name not in variant.overrides:
            raise ValueError(
                f"{path}: filed under {path.parent.name!r} but replaces {sorted(variant.overrides)}; "
                "move it to the folder of the cell it breaks"
            )
        variants.append(variant)
    variants += [load_variant(p, "alternative") for p in sorted((folder / "alternatives").glob("*.py"))]
    names = [v.student for v in variants]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"{folder}: variant names must be unique across folders: {twice}")
    return variants


def _grade_id(cell: Any) -> str | None:
    meta = cell.metadata.get("nbgrader", {})
    return meta.get("grade_id") if meta.get("solution") else None


def build_submission(source_nb: Any, release_nb: Any, overrides: dict[str, str] | None = None) -> Any:
    """The release with each solution cell answered: the reference answer, or ``overrides[id]``.

    Raises:
        ValueError: if an override names a cell that is not a solution cell of the release.
    """
    overrides = overrides or {}
    answers = {_grade_id(c): strip_solution_markers(c.source) for c in source_nb.cells if _grade_id(c)}
    submission = nbformat.from_dict(release_nb)
    solution_ids = {gid for c in submission.cells if (gid := _grade_id(c))}
    unknown = sorted(set(overrides) - solution_ids)
    if unknown:
        raise ValueError(
            f"no solution cell with grade_id {', '.join(unknown)}; solution cells: {', '.join(sorted(solution_ids))}"
        )
    for cell in submission.cells:
        grade_id = _grade_id(cell)
        if grade_id:
            cell.source = overrides.get(grade_id, answers[grade_id])
    return submission


def grade_variants(
    course_root: Path,
    module: str,
    variants: list[Variant],
    work_dir: Path,
    settings: GradeSettings | None = None,
) -> dict[str, SubmissionResult]:
    """Grade the solution, the blank release and every variant; results keyed by student name."""
    source_nb = read_notebook(course_root / "solutions" / module / f"{module}.ipynb")
    release_nb = read_notebook(course_root / "exercises" / module / f"{module}.ipynb")
    classroom = work_dir / "submissions"
    submissions = {"solution": build_submission(source_nb, release_nb), "blank": nbformat.from_dict(release_nb)}
    for variant in variants:
        submissions[variant.student] = build_submission(source_nb, release_nb, variant.overrides)
    for student, nb in submissions.items():
        target = classroom / student / module / f"{module}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, target)
    results = grade_classroom(classroom, course_root, work_dir / "grading", [module], settings)
    return {r.student: r for r in results}


def run_variants(
    course_root: Path,
    module: str,
    variants: list[Variant],
    *,
    jobs: int | None = None,
    cell_timeout_s: int = 120,
    progress: bool = False,
) -> dict[str, Outcome]:
    """Each variant's tests in warm kernels (see the module docstring); outcomes keyed by student name.

    An alternative runs every test; a mutant runs up to the last test cell it must fail, and its
    outcome lists every test cell that failed (``Outcome.failed``). A cell may run for
    ``cell_timeout_s`` seconds, or ten times its time on the reference if that is longer.

    Raises:
        ValueError: if a variant replaces a cell that is not an answer cell, or names a test cell the
            notebook lacks.
        MutationError: if the reference fails its own tests or a worker dies.
    """
    notebook = course_root / "solutions" / module / f"{module}.ipynb"
    nb = read_notebook(notebook)
    answers = {gid: i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (gid := _grade_id(c))}
    cells = {str(gid): i for i, c in enumerate(nb.cells) if (gid := c.metadata.get("nbgrader", {}).get("grade_id"))}
    tasks = []
    for variant in variants:
        unknown = sorted(set(variant.overrides) - set(answers)) + sorted(set(variant.must_fail) - set(cells))
        if unknown:
            raise ValueError(f"{module} {variant.student}: no answer or test cell {', '.join(unknown)}")
        changed = sorted((answers[gid], source) for gid, source in variant.overrides.items())
        through = max(cells[t] for t in variant.must_fail) if variant.kind == "mutant" else len(nb.cells) - 1
        (first, source), more = changed[0], tuple(changed[1:])
        cell = str(nb.cells[first].metadata["nbgrader"]["grade_id"])
        tasks.append(
            Mutant(
                id=variant.student,
                cell=cell,
                index=first,
                operator="variant",
                line=0,
                source=source,
                diff="",
                change=variant.description,
                more=more,
                through=through,
            )
        )
    if not tasks:
        return {}
    workers = max(1, min(jobs or os.cpu_count() or 1, len(tasks)))
    return _run_workers(notebook, tasks, workers, cell_timeout_s, 10.0, progress)
