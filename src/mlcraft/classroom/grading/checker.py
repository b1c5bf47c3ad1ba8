"""``mlcraft check``: a learner runs their exercise notebook and sees what the grader will see.

The notebook is executed the way ``mlcraft grade`` executes it (:class:`GuardedExecute`: the
learner's cells in a fresh kernel in the notebook's folder, each test cell in the grader's
judge, which calls the learner's functions with data), without the sandbox, and each graded
cell is scored the way ``mlcraft grade`` scores it (:func:`honest_grade`: a test cell that
raises an error scores 0; warnings on stderr do not), so the learner's number matches the
instructor's on the visible tests, and a function that works in the notebook but returns
something the grader cannot read shows up here first. Hidden tests only run when the
instructor grades.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbgrader.utils import compute_checksum, is_grade, is_locked, is_solution

from mlcraft.classroom.grading.execute import GuardedExecute, honest_grade
from mlcraft.classroom.grading.notebooks import read_notebook

__all__ = ["CellResult", "CheckReport", "check_notebook", "score_cells"]


@dataclass(frozen=True)
class CellResult:
    """How one graded cell fared."""

    grade_id: str
    points: float
    max_points: float
    passed: bool
    error: str = ""  # last line of the traceback, or why the cell scored 0
    edited_locked: bool = False  # a locked cell was changed; grading restores the original


@dataclass
class CheckReport:
    """The outcome of checking one notebook."""

    path: Path
    cells: list[CellResult] = field(default_factory=list)
    aborted: str = ""  # set when a cell timed out or killed the kernel (later cells ran in a fresh one)

    @property
    def score(self) -> float:
        return sum(c.points for c in self.cells)

    @property
    def max_score(self) -> float:
        return sum(c.max_points for c in self.cells)

    @property
    def passed(self) -> bool:
        return not self.aborted and all(c.passed for c in self.cells)


def _error_summary(cell: Any) -> str:
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            value = str(output.get("evalue", "")).strip().splitlines()
            return f"{output.get('ename', 'Error')}: {value[0] if value else ''}".strip().rstrip(":")
    return ""


def score_cells(nb: Any) -> list[CellResult]:
    """Score the autograded test cells of an executed notebook as nbgrader does."""
    results = []
    for cell in nb.cells:
        if not is_grade(cell) or is_solution(cell) or cell.cell_type != "code":
            continue  # manually graded answers are not scored here
        points, max_points = honest_grade(cell)
        checksum = cell.metadata["nbgrader"].get("checksum")
        edited = bool(checksum) and is_locked(cell) and checksum != compute_checksum(cell)
        results.append(
            CellResult(
                grade_id=cell.metadata["nbgrader"].get("grade_id", "?"),
                points=float(points or 0.0),
                max_points=float(max_points),
                passed=points is not None and points >= max_points,
                error=_error_summary(cell),
                edited_locked=edited,
            )
        )
    return results


def check_notebook(path: Path, *, timeout: int = 300) -> CheckReport:
    """Execute ``path`` top to bottom as the grader does and score its graded cells.

    The file on disk is not modified. ``timeout`` bounds each cell, in seconds.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        InvalidNotebookError: if it is not a valid notebook.
    """
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such notebook")
    nb = read_notebook(path)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    report = CheckReport(path=path)
    # The kernel's own start-up notices (e.g. about its transport) are not the learner's business.
    executor = GuardedExecute(timeout=timeout, extra_arguments=["--IPKernelApp.log_level=ERROR"])
    executor.preprocess(nb, {"metadata": {"path": str(path.parent.resolve())}})
    stopped = [e for e in executor.events if e["kind"] in ("timeout", "crashed")]
    if stopped:
        report.aborted = "; ".join(f"{e['cell']}: {e['detail']}" for e in stopped)
    report.cells = score_cells(nb)
    return report
