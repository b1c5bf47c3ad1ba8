"""``mlcraft grade``: autograde a classroom folder with nbgrader and report every submission.

Layout read: ``SUBMISSIONS_DIR/<student>/<module>/<module>.ipynb``. The submissions folder is
only read. Everything nbgrader writes goes to ``out_dir``: a template gradebook that knows each
module's graded cells (``template/``), one private workspace per submission
(``work/<module>/<student>/``: a copy of the notebook, a copy of the template gradebook, the
autograded notebook), feedback HTML (``feedback/<student>/<module>.html``), ``grades.csv`` and
``report.json``. Private workspaces let ``workers`` submissions be graded in parallel without
sharing a database, and a failure stays inside one workspace.

Every (student, module) pair gets a status, never a silent 0:

- ``graded``: autograded; score and per-cell points recorded.
- ``missing``: no notebook where one was expected (the detail says what was found instead).
- ``invalid notebook``: not valid JSON or not a valid notebook; nbgrader would drop it silently.
- ``error``: grading failed for this submission (nbgrader error or the per-submission time
  limit); the detail carries the reason. Other submissions are unaffected.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry
from pydantic import Field

from mlcraft.config import FrozenConfig
from mlcraft.grading.notebooks import InvalidNotebookError, read_notebook
from mlcraft.grading.paths import nbgrader_ignore_patterns
from mlcraft.grading.process import run_python, tail
from mlcraft.grading.release import resolve_modules
from mlcraft.utils.logging import get_logger

__all__ = ["GradeSettings", "Status", "SubmissionResult", "grade_classroom", "write_reports"]

log = get_logger(__name__)

# nbgrader stores student ids in its database and uses them as folder names.
_STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]*$")


class Status(str, Enum):
    GRADED = "graded"
    MISSING = "missing"
    INVALID = "invalid notebook"
    ERROR = "error"


class GradeSettings(FrozenConfig):
    """Limits for one grading run."""

    cell_timeout_s: int = Field(default=120, ge=1, le=3600)  # per cell, inside the kernel
    submission_timeout_s: int = Field(default=900, ge=10, le=24 * 3600)  # whole submission, wall clock
    workers: int = Field(default=1, ge=1, le=64)  # submissions graded in parallel


@dataclass
class SubmissionResult:
    """What happened to one student's notebook for one module."""

    student: str
    module: str
    status: Status
    score: float = 0.0
    max_score: float = 0.0
    detail: str = ""
    feedback: str = ""  # path of the feedback HTML, when generated
    cells: dict[str, tuple[float, float]] = field(default_factory=dict)  # grade_id -> (score, max)


def _workspace_config(workspace: Path, source_dir: Path, settings: GradeSettings) -> str:
    entries = {
        "CourseDirectory.root": str(workspace),
        "CourseDirectory.source_directory": str(source_dir),
        "CourseDirectory.release_directory": str(workspace / "release"),
        "CourseDirectory.submitted_directory": str(workspace / "submitted"),
        "CourseDirectory.autograded_directory": str(workspace / "autograded"),
        "CourseDirectory.feedback_directory": str(workspace / "feedback"),
        "CourseDirectory.db_url": f"sqlite:///{workspace / 'gradebook.db'}",
        "CourseDirectory.ignore": nbgrader_ignore_patterns(source_dir),
        "OverwriteCells.add_missing_cells": True,
        "Execute.timeout": settings.cell_timeout_s,
        "Execute.extra_arguments": ["--IPKernelApp.log_level=ERROR"],
    }
    lines = [
        '"""Written by `mlcraft grade` for this grading run; regenerated on every run."""',
        "c = get_config()  # noqa: F821",
    ]
    lines += [f"c.{key} = {value!r}" for key, value in entries.items()]
    return "\n".join(lines) + "\n"


def _write_config(workspace: Path, source_dir: Path, settings: GradeSettings) -> None:
    workspace.mkdir(parents=True, exist_ok=True)
    (workspace / "nbgrader_config.py").write_text(_workspace_config(workspace, source_dir, settings), encoding="utf-8")


def _prepare_template(out_dir: Path, source_dir: Path, modules: list[str], settings: GradeSettings) -> Path:
    """A fresh gradebook that knows each module's graded cells; returns its path."""
    for name in ("template", "work", "feedback"):
        if (out_dir / name).exists():
            shutil.rmtree(out_dir / name)
    template = out_dir / "template"
    _write_config(template, source_dir, settings)
    for module in modules:
        proc = run_python(["-m", "nbgrader", "generate_assignment", module, "--force"], template)
        if proc.returncode != 0:
            raise RuntimeError(
                f"could not load the source of {module} into the gradebook:\n{tail(proc.stdout + proc.stderr, 10)}"
            )
    return template / "gradebook.db"


def _check_submission(submissions: Path, student: str, module: str) -> SubmissionResult | None:
    """The result that explains why a submission cannot be graded, or None when it can."""
    if not _STUDENT_ID.match(student):
        return SubmissionResult(
            student, module, Status.ERROR, detail="folder name must use only letters, digits and . _ @ + -; rename it"
        )
    expected = submissions / student / module / f"{module}.ipynb"
    if not expected.is_file():
        folder = expected.parent
        found = sorted(p.name for p in folder.glob("*.ipynb")) if folder.is_dir() else []
        detail = f"no {module}/{module}.ipynb" + (f"; found {', '.join(found)}" if found else "")
        return SubmissionResult(student, module, Status.MISSING, detail=detail)
    try:
        read_notebook(expected)
    except InvalidNotebookError as err:
        return SubmissionResult(student, module, Status.INVALID, detail=str(err).removeprefix(f"{expected}: "))
    return None


def _grade_one(
    submissions: Path,
    out_dir: Path,
    source_dir: Path,
    gradebook: Path,
    student: str,
    module: str,
    settings: GradeSettings,
) -> SubmissionResult:
    """Grade one submission in its own workspace (a private copy of the gradebook)."""
    problem = _check_submission(submissions, student, module)
    if problem is not None:
        return problem
    workspace = out_dir / "work" / module / student
    _write_config(workspace, source_dir, settings)
    shutil.copyfile(gradebook, workspace / "gradebook.db")
    target = workspace / "submitted" / student / module / f"{module}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(submissions / student / module / f"{module}.ipynb", target)
    ok, detail = _run_worker(workspace, student, module, settings)
    result = SubmissionResult(student, module, Status.GRADED if ok else Status.ERROR, detail=detail)
    if ok:
        _read_scores(workspace, result)
        produced = workspace / "feedback" / student / module / f"{module}.html"
        if produced.is_file():
            feedback = out_dir / "feedback" / student / f"{module}.html"
            feedback.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(produced, feedback)
            result.feedback = str(feedback)
    return result


def _run_worker(workspace: Path, student: str, module: str, settings: GradeSettings) -> tuple[bool, str]:
    try:
        proc = run_python(["-m", "mlcraft.grading.worker", module, student], workspace, settings.submission_timeout_s)
    except subprocess.TimeoutExpired:
        return False, f"grading took longer than {settings.submission_timeout_s} s and was stopped"
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    try:
        payload = json.loads(last)
    except json.JSONDecodeError:
        stderr_tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return False, f"grader process failed (exit {proc.returncode}): {stderr_tail}"
    if payload.get("ok"):
        return True, ""
    lines = [ln for ln in str(payload.get("log", "")).splitlines() if "ERROR" in ln or "Error" in ln]
    return False, f"nbgrader {payload.get('stage')} failed: {(lines or ['see report.json'])[-1].strip()}"


def _read_scores(workspace: Path, result: SubmissionResult) -> None:
    with Gradebook(f"sqlite:///{workspace / 'gradebook.db'}") as gradebook:
        try:
            submission = gradebook.find_submission(result.module, result.student)
        except MissingEntry:
            result.status, result.detail = Status.ERROR, "nbgrader recorded no submission (see report.json)"
            return
        result.score, result.max_score = float(submission.score), float(submission.max_score)
        for notebook in submission.notebooks:
            for grade in notebook.grades:
                result.cells[grade.name] = (float(grade.score), float(grade.max_score))


def _max_scores(gradebook_path: Path, modules: list[str]) -> dict[str, float]:
    with Gradebook(f"sqlite:///{gradebook_path}") as gradebook:
        return {m: float(gradebook.find_assignment(m).max_score) for m in modules}


def grade_classroom(
    submissions: Path,
    course_root: Path,
    out_dir: Path,
    modules: list[str] | None = None,
    settings: GradeSettings | None = None,
    on_result: Callable[[SubmissionResult], None] | None = None,
) -> list[SubmissionResult]:
    """Autograde every student folder in ``submissions`` for ``modules`` (default: every module
    that at least one student submitted, among those the course has).

    ``on_result`` is called after each submission (for progress display).

    Raises:
        FileNotFoundError: if ``submissions`` is not a folder.
        ValueError: for an unknown module, an empty classroom, or ``out_dir`` inside ``submissions``.
    """
    settings = settings or GradeSettings()
    submissions, out_dir = submissions.resolve(), out_dir.resolve()
    if not submissions.is_dir():
        raise FileNotFoundError(
            f"{submissions}: no such folder; expected SUBMISSIONS_DIR/<student>/<module>/<module>.ipynb"
        )
    if out_dir == submissions or submissions in out_dir.parents:
        raise ValueError(f"output folder {out_dir} is inside the submissions folder; choose another --out")
    source_dir = course_root / "solutions"
    students = sorted(p.name for p in submissions.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not students:
        raise ValueError(
            f"{submissions}: no student folders; expected SUBMISSIONS_DIR/<student>/<module>/<module>.ipynb"
        )
    if modules:
        chosen = resolve_modules(source_dir, modules)
    else:
        submitted = {p.name for s in students for p in (submissions / s).iterdir() if p.is_dir()}
        chosen = [m for m in resolve_modules(source_dir, None) if m in submitted]
        if not chosen:
            raise ValueError(f"{submissions}: no student folder holds a known module; name one with --module")
    gradebook = _prepare_template(out_dir, source_dir, chosen, settings)
    max_scores = _max_scores(gradebook, chosen)
    jobs = [(module, student) for module in chosen for student in students]

    def grade(job: tuple[str, str]) -> SubmissionResult:
        module, student = job
        result = _grade_one(submissions, out_dir, source_dir, gradebook, student, module, settings)
        result.max_score = result.max_score or max_scores[module]
        log.info("submission", student=student, module=module, status=result.status.value, score=result.score)
        if on_result is not None:
            on_result(result)
        return result

    # Threads only wait on grading subprocesses, so they parallelise fine.
    with ThreadPoolExecutor(max_workers=settings.workers) as pool:
        results = list(pool.map(grade, jobs))
    write_reports(results, out_dir)
    return results


def write_reports(results: list[SubmissionResult], out_dir: Path) -> tuple[Path, Path]:
    """Write ``grades.csv`` (one row per submission) and ``report.json`` (with per-cell points)."""
    csv_path, json_path = out_dir / "grades.csv", out_dir / "report.json"
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["student", "module", "status", "score", "max_score", "detail", "feedback"])
        for r in results:
            writer.writerow(
                [r.student, r.module, r.status.value, f"{r.score:g}", f"{r.max_score:g}", r.detail, r.feedback]
            )
    payload = [{**asdict(r), "status": r.status.value} for r in results]
    json_path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return csv_path, json_path
