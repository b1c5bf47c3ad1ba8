"""``mlcraft grade``: autograde a classroom folder with nbgrader and report every submission.

Layout read: ``SUBMISSIONS_DIR/<student>/<module>/<module>.ipynb``. The submissions folder is
only read. Everything nbgrader writes goes to ``out_dir``: a template gradebook that knows each
module's graded cells (``template/``), one private workspace per submission
(``work/<module>/<student>/``: a copy of the notebook only, a copy of the template gradebook,
the autograded notebook), one result file per finished submission
(``results/<module>/<student>.json``), feedback HTML (``feedback/<student>/<module>.html``),
``grades.csv`` and ``report.json``.

Each submission is graded by its own process (:mod:`mlcraft.grading.worker`); only its kernel,
which runs the student's code, is sandboxed and limited (:mod:`mlcraft.grading.sandbox`,
:mod:`mlcraft.grading.limits`, :mod:`mlcraft.grading.execute`). ``workers`` submissions run at
once. A result file is written atomically when a submission is done, so a run that is
interrupted (Ctrl-C, kill) and started again grades only what is left, unless ``force``; a
result is reused only when the notebook, the source and the limits are unchanged.

Every (student, module) pair gets a status, never a silent 0, and a list of flags:

- ``graded``: autograded, nothing unusual.
- ``tampered``: graded after restoring protected cells the student changed (flags name them).
- ``memory`` / ``crashed`` / ``timeout``: graded, but a cell went over the memory limit, killed
  its kernel, or ran out of time (per cell or for the submission); only the cells affected
  lose points, and the flags name them.
- ``missing``: no notebook where one was expected (the detail says what was found instead).
- ``invalid notebook``: not valid JSON or not a valid notebook; nbgrader would drop it silently.
- ``error``: grading failed for this submission (nbgrader error, or the grading process went
  over the wall-clock limit); the detail carries the reason. Other submissions are unaffected.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Literal

from nbgrader.api import Gradebook, MissingEntry
from pydantic import Field

from mlcraft.config import FrozenConfig
from mlcraft.grading.notebooks import InvalidNotebookError, read_notebook
from mlcraft.grading.paths import grading_dir, nbgrader_ignore_patterns
from mlcraft.grading.process import python_env, run_python, tail
from mlcraft.grading.release import resolve_modules
from mlcraft.grading.sandbox import MISSING_PROTECTIONS, sandbox_status
from mlcraft.utils.files import atomic_write
from mlcraft.utils.logging import get_logger

__all__ = ["SCORED", "GradeSettings", "Status", "SubmissionResult", "grade_classroom", "write_reports"]

log = get_logger(__name__)

# nbgrader stores student ids in its database and uses them as folder names.
_STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]*$")
# Time the grading process gets beyond the submission limit (start-up, saving, feedback).
_PROCESS_GRACE_S = 60
_RESULT_VERSION = 2


class Status(str, Enum):
    GRADED = "graded"
    TAMPERED = "tampered"
    MEMORY = "memory"
    CRASHED = "crashed"
    TIMEOUT = "timeout"
    MISSING = "missing"
    INVALID = "invalid notebook"
    ERROR = "error"


#: Statuses that come with a score from the autograder.
SCORED = (Status.GRADED, Status.TAMPERED, Status.MEMORY, Status.CRASHED, Status.TIMEOUT)


class GradeSettings(FrozenConfig):
    """Limits for one grading run (defaults suit the course's assignments on a laptop)."""

    cell_timeout_s: int = Field(default=120, ge=1, le=3600)  # per cell, inside the kernel
    submission_timeout_s: int = Field(default=900, ge=10, le=24 * 3600)  # whole submission, wall clock
    workers: int = Field(default=1, ge=1, le=64)  # submissions graded in parallel
    memory_mb: int = Field(default=8192, ge=512, le=1 << 20)  # kernel address space (PyTorch reserves ~3 GiB)
    max_output_bytes: int = Field(default=1_000_000, ge=1024, le=1 << 30)  # output kept per cell
    scratch_mb: int = Field(default=256, ge=16, le=1 << 16)  # writable scratch (tmpfs) and largest file
    sandbox: Literal["auto", "bwrap", "off"] = "auto"  # bwrap: required; auto: where available
    guard: bool = True  # restore torch/numpy/test helpers before each graded cell (imports them at start)
    feedback: bool = True  # generate feedback HTML for each student


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
    flags: list[str] = field(default_factory=list)  # e.g. "timeout: test-add", "tampered: test-add (edited)"
    tampered: list[str] = field(default_factory=list)  # protected cells changed, restored before grading
    seconds: float = 0.0  # wall-clock time spent grading


def _workspace_config(
    workspace: Path, source_dir: Path, settings: GradeSettings, sandbox: dict[str, Any] | None = None
) -> str:
    entries: dict[str, Any] = {
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
    if sandbox is not None:
        pre = "mlcraft.grading.execute"
        lines += [
            "from nbgrader import preprocessors as nb",
            "from nbconvert.preprocessors import ClearMetadataPreprocessor",
            f"from {pre} import DeduplicateCells, GuardedExecute, HonestSaveAutoGrades, SanitizeCells",
            "c.Autograde.sanitize_preprocessors = [nb.ClearOutput, DeduplicateCells, nb.OverwriteKernelspec,"
            " nb.OverwriteCells, SanitizeCells, nb.CheckCellMetadata]",
            "c.Autograde.autograde_preprocessors = [GuardedExecute, nb.IgnorePattern, ClearMetadataPreprocessor,"
            " nb.LimitOutput, HonestSaveAutoGrades, nb.AssignLatePenalties, nb.CheckCellMetadata]",
        ]
        entries |= {
            "GuardedExecute.timeout": settings.cell_timeout_s,
            "GuardedExecute.extra_arguments": ["--IPKernelApp.log_level=ERROR"],
            "GuardedExecute.max_output_bytes": settings.max_output_bytes,
            "GuardedExecute.deadline": time.time() + settings.submission_timeout_s,
            "GuardedExecute.events_path": str(workspace / "events.json"),
            "SandboxKernelManager.memory_bytes": settings.memory_mb * 2**20,
            "SandboxKernelManager.file_size_bytes": settings.scratch_mb * 2**20,
            "SandboxKernelManager.scratch_bytes": settings.scratch_mb * 2**20,
            "SandboxKernelManager.guard": settings.guard,
            **{f"SandboxKernelManager.{k}": v for k, v in sandbox.items()},
        }
    lines += [f"c.{key} = {value!r}" for key, value in entries.items()]
    return "\n".join(lines) + "\n"


def _write_config(
    workspace: Path, source_dir: Path, settings: GradeSettings, sandbox: dict[str, Any] | None = None
) -> None:
    workspace.mkdir(parents=True, exist_ok=True)
    text = _workspace_config(workspace, source_dir, settings, sandbox)
    (workspace / "nbgrader_config.py").write_text(text, encoding="utf-8")


def _prepare_template(out_dir: Path, source_dir: Path, modules: list[str], settings: GradeSettings) -> Path:
    """A fresh gradebook that knows each module's graded cells; returns its path."""
    template = out_dir / "template"
    if template.exists():
        shutil.rmtree(template)
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
    if expected.stat().st_size == 0:
        return SubmissionResult(student, module, Status.INVALID, detail="empty file (0 bytes)")
    try:
        read_notebook(expected)
    except InvalidNotebookError as err:
        return SubmissionResult(student, module, Status.INVALID, detail=str(err).removeprefix(f"{expected}: "))
    return None


@dataclass
class _Run:
    """What every submission of one run shares."""

    submissions: Path
    course_root: Path
    out_dir: Path
    source_dir: Path
    gradebook: Path
    settings: GradeSettings
    sandbox: dict[str, Any]
    sandboxed: bool
    procs: dict[int, subprocess.Popen[str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: bool = False


def _grade_one(run: _Run, student: str, module: str) -> SubmissionResult:
    """Grade one submission in its own workspace (a private copy of the gradebook)."""
    problem = _check_submission(run.submissions, student, module)
    if problem is not None:
        return problem
    started = time.monotonic()
    workspace = run.out_dir / "work" / module / student
    if workspace.exists():
        shutil.rmtree(workspace)
    _write_config(workspace, run.source_dir, run.settings, run.sandbox)
    shutil.copyfile(run.gradebook, workspace / "gradebook.db")
    target = workspace / "submitted" / student / module / f"{module}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    # Only the notebook is copied: files submitted beside it are never importable by it.
    submitted = run.submissions / student / module
    shutil.copyfile(submitted / f"{module}.ipynb", target)
    extra = sorted(p.name for p in submitted.iterdir() if p.name != f"{module}.ipynb")
    ok, detail, payload = _run_worker(run, workspace, student, module)
    result = SubmissionResult(student, module, Status.GRADED if ok else Status.ERROR, detail=detail)
    if extra:
        result.flags.append(f"extra files ignored: {', '.join(extra)}")
    if not run.sandboxed:
        result.flags.append("no sandbox")
    if ok:
        _read_scores(workspace, result)
        _apply_findings(result, payload)
        produced = workspace / "feedback" / student / module / f"{module}.html"
        if produced.is_file():
            feedback = run.out_dir / "feedback" / student / f"{module}.html"
            feedback.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(produced, feedback)
            result.feedback = str(feedback)
    result.seconds = round(time.monotonic() - started, 3)
    return result


def _apply_findings(result: SubmissionResult, payload: dict[str, Any]) -> None:
    """Flags and status from the worker's tamper report and execution events."""
    result.tampered = [str(t) for t in payload.get("tampered", [])]
    result.flags += [f"tampered: {t}" for t in result.tampered]
    kinds = []
    for event in payload.get("events", []):
        kind = str(event.get("kind"))
        kinds.append(kind)
        result.flags.append(f"{'output cut' if kind == 'output' else kind}: {event.get('cell')}")
    if result.status is not Status.GRADED:
        return
    for status, present in (
        (Status.TAMPERED, bool(result.tampered)),
        (Status.MEMORY, "memory" in kinds),
        (Status.CRASHED, "crashed" in kinds),
        (Status.TIMEOUT, "timeout" in kinds),
    ):
        if present:
            result.status = status
            break
    if result.status is not Status.GRADED:
        result.detail = "; ".join(f for f in result.flags if not f.startswith(("no sandbox", "extra files")))


def _kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _run_worker(run: _Run, workspace: Path, student: str, module: str) -> tuple[bool, str, dict[str, Any]]:
    limit = run.settings.submission_timeout_s + _PROCESS_GRACE_S
    args = [module, student] if run.settings.feedback else [module, student, "--no-feedback"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlcraft.grading.worker", *args],
        cwd=workspace,
        env=python_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, killed as one
    )
    with run.lock:
        if run.stopping:
            _kill_group(proc)
        run.procs[proc.pid] = proc
    try:
        stdout, stderr = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        proc.communicate()
        return False, f"grading took longer than {limit} s and was stopped", {}
    finally:
        _kill_group(proc)  # anything the grader left behind
        with run.lock:
            run.procs.pop(proc.pid, None)
    last = stdout.strip().splitlines()[-1] if stdout.strip() else ""
    try:
        payload = json.loads(last)
    except json.JSONDecodeError:
        stderr_tail = (stderr.strip().splitlines() or ["no output"])[-1]
        return False, f"grader process failed (exit {proc.returncode}): {stderr_tail}", {}
    if payload.get("ok"):
        return True, "", payload
    lines = [ln for ln in str(payload.get("log", "")).splitlines() if "ERROR" in ln or "Error" in ln]
    return False, f"nbgrader {payload.get('stage')} failed: {(lines or ['see report.json'])[-1].strip()}", payload


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


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so a reader sees the old file or the new one, never half."""
    with atomic_write(path) as handle:
        handle.write(text.encode("utf-8"))


def _fingerprint(submissions: Path, source_dir: Path, student: str, module: str, settings: GradeSettings) -> str:
    """Changes when the submission, the assignment source or a limit changes."""
    digest = hashlib.sha256()
    for path in (submissions / student / module / f"{module}.ipynb", source_dir / module / f"{module}.ipynb"):
        digest.update(path.read_bytes() if path.is_file() else b"<none>")
        digest.update(b"\0")
    digest.update(settings.model_dump_json(exclude={"workers"}).encode())
    digest.update(str(_RESULT_VERSION).encode())
    return digest.hexdigest()


def _result_path(out_dir: Path, student: str, module: str) -> Path:
    return out_dir / "results" / module / f"{student}.json"


def _load_result(path: Path, fingerprint: str) -> SubmissionResult | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.pop("fingerprint") != fingerprint:
            return None
        data["status"] = Status(data["status"])
        data["cells"] = {k: (float(v[0]), float(v[1])) for k, v in data["cells"].items()}
        return SubmissionResult(**data)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _result_json(result: SubmissionResult) -> dict[str, Any]:
    return {**asdict(result), "status": result.status.value}


def grade_classroom(
    submissions: Path,
    course_root: Path,
    out_dir: Path,
    modules: list[str] | None = None,
    settings: GradeSettings | None = None,
    on_result: Callable[[SubmissionResult], None] | None = None,
    *,
    force: bool = False,
) -> list[SubmissionResult]:
    """Autograde every student folder in ``submissions`` for ``modules`` (default: every module
    that at least one student submitted, among those the course has).

    Submissions with a result in ``out_dir`` from an earlier run (same notebook, source and
    limits) are not graded again unless ``force``. ``on_result`` is called after each
    submission (for progress display), reused ones included.

    Raises:
        FileNotFoundError: if ``submissions`` is not a folder.
        ValueError: for an unknown module, an empty classroom, or ``out_dir`` inside ``submissions``.
        RuntimeError: if ``settings.sandbox`` is ``"bwrap"`` and no sandbox can be built here.
    """
    settings = settings or GradeSettings()
    submissions, out_dir = submissions.resolve(), out_dir.resolve()
    if not submissions.is_dir():
        raise FileNotFoundError(
            f"{submissions}: no such folder; expected SUBMISSIONS_DIR/<student>/<module>/<module>.ipynb"
        )
    if out_dir == submissions or submissions in out_dir.parents:
        raise ValueError(f"output folder {out_dir} is inside the submissions folder; choose another --out")
    course_root = course_root.resolve()
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
    bwrap, reason = sandbox_status(settings.sandbox)
    if settings.sandbox == "bwrap" and not bwrap:
        raise RuntimeError(f"--sandbox bwrap was asked for, but {reason}")
    if not bwrap:
        log.warning("grading without a sandbox", reason=reason, missing=MISSING_PROTECTIONS)
    sandbox = {
        "bwrap": bwrap,
        "secret": [str(source_dir), str(out_dir), str(submissions), str(grading_dir())],
        "hidden": [str(course_root)],
    }
    gradebook = _prepare_template(out_dir, source_dir, chosen, settings)
    max_scores = _max_scores(gradebook, chosen)
    run = _Run(submissions, course_root, out_dir, source_dir, gradebook, settings, sandbox, bool(bwrap))
    jobs = [(module, student) for module in chosen for student in students]

    def grade(job: tuple[str, str]) -> SubmissionResult:
        module, student = job
        path = _result_path(out_dir, student, module)
        fingerprint = _fingerprint(submissions, source_dir, student, module, settings)
        result = None if force else _load_result(path, fingerprint)
        if result is None:
            if run.stopping:
                raise KeyboardInterrupt
            result = _grade_one(run, student, module)
            if run.stopping:  # interrupted while grading: nothing is recorded, it is graded next run
                raise KeyboardInterrupt
            result.max_score = result.max_score or max_scores[module]
            _write_atomic(path, json.dumps({**_result_json(result), "fingerprint": fingerprint}, indent=1))
            log.info("submission", student=student, module=module, status=result.status.value, score=result.score)
        if on_result is not None:
            on_result(result)
        return result

    # Threads only wait on grading subprocesses, so they parallelise fine.
    pool = ThreadPoolExecutor(max_workers=settings.workers)
    try:
        results = list(pool.map(grade, jobs))
    except BaseException:
        # Ctrl-C or an error: stop every grading process now; finished results are on disk.
        with run.lock:
            run.stopping = True
            for proc in run.procs.values():
                _kill_group(proc)
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()
    write_reports(results, out_dir)
    return results


def write_reports(results: list[SubmissionResult], out_dir: Path) -> tuple[Path, Path]:
    """Write ``grades.csv`` (one row per submission) and ``report.json`` (with per-cell points and
    flags), each atomically."""
    import io

    csv_path, json_path = out_dir / "grades.csv", out_dir / "report.json"
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["student", "module", "status", "score", "max_score", "flags", "detail", "feedback"])
    for r in results:
        writer.writerow(
            [
                r.student,
                r.module,
                r.status.value,
                f"{r.score:g}",
                f"{r.max_score:g}",
                "; ".join(r.flags),
                r.detail,
                r.feedback,
            ]
        )
    _write_atomic(csv_path, buffer.getvalue())
    _write_atomic(json_path, json.dumps([_result_json(r) for r in results], indent=2) + "\n")
    return csv_path, json_path
