"""``mlcraft grade``: autograde a classroom folder with nbgrader and report every submission.

Layout read: ``SUBMISSIONS_DIR/<student>/<module>/<module>.ipynb``. The submissions folder is
only read. Everything nbgrader writes goes to ``out_dir``: a template gradebook that knows each
module's graded cells (``template/``), one private workspace per submission
(``work/<module>/<student>/``: a copy of the notebook only, a copy of the template gradebook,
the autograded notebook), one result file per finished submission
(``results/<module>/<student>.json``), feedback HTML (``feedback/<student>/<module>.html``),
``grades.csv`` and ``report.json``.

Each submission is graded by its own process (:mod:`mlcraft.classroom.grading.worker`), given a job file
and answering through one event log; only its kernel, which runs the student's code, is
sandboxed and limited (:mod:`mlcraft.classroom.grading.sandbox`, :mod:`mlcraft.classroom.grading.limits`), and every
test cell is judged outside that kernel (:mod:`mlcraft.classroom.grading.execute`). ``workers``
submissions run at once. A result file is written atomically when a submission is done, so a
run that is interrupted (Ctrl-C, kill) and started again grades only what is left, unless
``force``; a result is reused only when the notebook, the source and the limits are unchanged.

Submissions are read without following symbolic links: a student folder, module folder or
notebook that is a link is reported (``symlink``), never graded as that student's work. A
notebook that cannot be loaded (broken or deeply nested JSON, too large, an old format that
cannot be converted) gets a status and a reason; it never stops the run.

Every (student, module) pair gets a status, never a silent 0, and a list of flags:

- ``graded``: autograded, nothing unusual.
- ``tampered``: graded after restoring protected cells the student changed (flags name them).
- ``memory`` / ``crashed`` / ``timeout``: graded, but a cell went over the memory limit, killed
  its kernel, or ran out of time (per cell or for the submission); only the cells affected
  lose points, and the flags name them.
- ``missing``: no notebook where one was expected (the detail says what was found instead).
- ``symlink``: the student folder, module folder or notebook is a symbolic link; not graded.
- ``invalid notebook``: not valid JSON or not a valid notebook, too large or too deeply
  nested; nbgrader would drop it silently.
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
from typing import Any

import nbformat
from nbgrader.api import Gradebook

from mlcraft.classroom.grading.notebooks import InvalidNotebookError, read_notebook_bytes
from mlcraft.classroom.grading.paths import grading_dir
from mlcraft.classroom.grading.process import python_env, tail
from mlcraft.classroom.grading.release import resolve_modules
from mlcraft.classroom.grading.sandbox import MISSING_PROTECTIONS, sandbox_status
from mlcraft.classroom.grading.settings import GradeSettings
from mlcraft.classroom.grading.worker import EVENTS_FILE, JOB_FILE, WorkerJob
from mlcraft.utils.files import atomic_write
from mlcraft.utils.logging import get_logger

__all__ = ["SCORED", "GradeSettings", "Status", "SubmissionResult", "grade_classroom", "write_reports"]

log = get_logger(__name__)

# nbgrader stores student ids in its database and uses them as folder names.
_STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]*$")
# Time the grading process gets beyond the submission limit (start-up, saving, feedback).
_PROCESS_GRACE_S = 60
_RESULT_VERSION = 3


class Status(str, Enum):
    GRADED = "graded"
    TAMPERED = "tampered"
    MEMORY = "memory"
    CRASHED = "crashed"
    TIMEOUT = "timeout"
    MISSING = "missing"
    SYMLINK = "symlink"
    INVALID = "invalid notebook"
    ERROR = "error"


#: Statuses that come with a score from the autograder.
SCORED = (Status.GRADED, Status.TAMPERED, Status.MEMORY, Status.CRASHED, Status.TIMEOUT)


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


def _run_job(job: WorkerJob, limit: float, run: _Run | None = None) -> tuple[int | None, str]:
    """Run a worker on ``job``; ``(exit code or None when stopped at limit, stderr tail)``."""
    job.workspace.mkdir(parents=True, exist_ok=True)
    job_file = job.workspace / JOB_FILE
    job_file.write_text(job.model_dump_json(indent=1), encoding="utf-8")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlcraft.classroom.grading.worker", str(job_file)],
        cwd=job.workspace,
        env=python_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, killed as one
    )
    if run is not None:
        with run.lock:
            if run.stopping:
                _kill_group(proc)
            run.procs[proc.pid] = proc
    try:
        _, stderr = proc.communicate(timeout=limit)
        return proc.returncode, tail(stderr or "", 5)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        proc.communicate()
        return None, ""
    finally:
        _kill_group(proc)  # anything the grader left behind
        if run is not None:
            with run.lock:
                run.procs.pop(proc.pid, None)


def _prepare_template(out_dir: Path, source_dir: Path, modules: list[str], settings: GradeSettings) -> Path:
    """A fresh gradebook that knows each module's graded cells; returns its path."""
    template = out_dir / "template"
    if template.exists():
        shutil.rmtree(template)
    job = WorkerJob(command="prepare", modules=modules, workspace=template, source_dir=source_dir, settings=settings)
    code, stderr = _run_job(job, limit=600)
    if code != 0:
        raise RuntimeError(f"could not load the sources of {', '.join(modules)} into the gradebook:\n{stderr}")
    return template / "gradebook.db"


def _is_link(path: Path) -> bool:
    return path.is_symlink()


def _read_submission(
    submissions: Path, student: str, module: str, limit_bytes: int
) -> tuple[bytes, SubmissionResult | None]:
    """The notebook's bytes, read without following links, or the result that explains why
    it cannot be graded."""
    if not _STUDENT_ID.match(student):
        return b"", SubmissionResult(
            student, module, Status.ERROR, detail="folder name must use only letters, digits and . _ @ + -; rename it"
        )
    folder = submissions / student / module
    expected = folder / f"{module}.ipynb"
    for path in (submissions / student, folder, expected):
        if _is_link(path):
            target = os.readlink(path)
            return b"", SubmissionResult(
                student,
                module,
                Status.SYMLINK,
                detail=f"{path.relative_to(submissions)} is a symbolic link (to {target}); links are never followed: "
                "submit the file itself",
                flags=["symlink"],
            )
    if not expected.is_file():
        found = sorted(p.name for p in folder.glob("*.ipynb")) if folder.is_dir() else []
        detail = f"no {module}/{module}.ipynb" + (f"; found {', '.join(found)}" if found else "")
        return b"", SubmissionResult(student, module, Status.MISSING, detail=detail)
    size = expected.stat().st_size
    if size == 0:
        return b"", SubmissionResult(student, module, Status.INVALID, detail="empty file (0 bytes)")
    if size > limit_bytes:
        return b"", SubmissionResult(
            student,
            module,
            Status.INVALID,
            detail=f"the notebook is {size / 2**20:.1f} MiB, more than the {limit_bytes / 2**20:g} MiB limit "
            "(--max-notebook-mb); clear its outputs and submit again",
        )
    fd = os.open(expected, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(limit_bytes + 1)
    return data, None


def _load(data: bytes, student: str, module: str) -> tuple[tuple[Any, int] | None, SubmissionResult | None]:
    """The notebook (nbformat 4, converted from 3 if need be), or the result saying why not."""
    try:
        return read_notebook_bytes(data, f"{student}/{module}/{module}.ipynb"), None
    except InvalidNotebookError as err:
        return None, SubmissionResult(student, module, Status.INVALID, detail=str(err).split(": ", 1)[-1])


@dataclass
class _Run:
    """What every submission of one run shares."""

    submissions: Path
    course_root: Path
    out_dir: Path
    source_dir: Path
    gradebook: Path
    settings: GradeSettings
    bwrap: str
    secret: tuple[str, ...]
    max_scores: dict[str, float]
    procs: dict[int, subprocess.Popen[str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: bool = False


def _grade_one(run: _Run, student: str, module: str, data: bytes, nb: Any) -> SubmissionResult:
    """Grade one submission in its own workspace (a private copy of the gradebook)."""
    started = time.monotonic()
    workspace = run.out_dir / "work" / module / student
    if workspace.exists():
        shutil.rmtree(workspace)
    workspace.mkdir(parents=True)
    shutil.copyfile(run.gradebook, workspace / "gradebook.db")
    target = workspace / "submitted" / student / module / f"{module}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    # Only the notebook is copied: files submitted beside it are never importable by it.
    notebook, version = nb
    if version != 4:
        nbformat.write(notebook, target)  # converted to nbformat 4
    else:
        target.write_bytes(data)
    folder = run.submissions / student / module
    extra = sorted(p.name for p in folder.iterdir() if p.name != f"{module}.ipynb")
    job = WorkerJob(
        command="grade",
        modules=[module],
        student=student,
        workspace=workspace,
        source_dir=run.source_dir,
        settings=run.settings,
        bwrap=run.bwrap,
        secret=run.secret,
        deadline=time.time() + run.settings.submission_timeout_s,
    )
    limit = run.settings.submission_timeout_s + _PROCESS_GRACE_S
    code, stderr = _run_job(job, limit, run)
    result = _result_from_events(student, module, workspace / EVENTS_FILE, code, stderr, limit)
    result.max_score = result.max_score or run.max_scores[module]
    if version != 4:
        result.flags.append(f"converted from nbformat {version}")
    if extra:
        links = [name for name in extra if (folder / name).is_symlink()]
        result.flags.append(f"extra files ignored: {', '.join(extra)}")
        if links:
            result.flags.append(f"symlinks ignored: {', '.join(links)}")
    if not run.bwrap:
        result.flags.append("no sandbox")
    if result.feedback:
        feedback = run.out_dir / "feedback" / student / f"{module}.html"
        feedback.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(result.feedback, feedback)
        result.feedback = str(feedback)
    result.seconds = round(time.monotonic() - started, 3)
    return result


def _read_events(path: Path) -> list[dict[str, Any]]:
    """The worker's events; a half-written last line (the worker was killed) is skipped."""
    events = []
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events


def _result_from_events(
    student: str, module: str, path: Path, code: int | None, stderr: str, limit: float
) -> SubmissionResult:
    """The submission's result, from the one channel its worker writes (see ``worker``)."""
    events = _read_events(path)
    result = SubmissionResult(student, module, Status.GRADED)
    decided: dict[str, tuple[float, float]] = {}
    kinds: list[str] = []
    graded = done = None
    for event in events:
        kind = event.get("event")
        if kind == "tampered":
            result.tampered = [str(t) for t in event.get("items", [])]
            result.flags += [f"tampered: {t}" for t in result.tampered]
        elif kind == "flag":
            kinds.append(str(event.get("kind")))
            label = "output cut" if event.get("kind") == "output" else str(event.get("kind"))
            result.flags.append(f"{label}: {event.get('cell')}")
        elif kind == "cell" and event.get("points") is not None:
            decided[str(event["cell"])] = (float(event["points"]), float(event["max_points"]))
        elif kind == "graded":
            graded = event
        elif kind == "feedback":
            result.feedback = str(event.get("path", ""))
        elif kind == "done":
            done = event
    if graded is not None:
        result.score, result.max_score = float(graded["score"]), float(graded["max_score"])
        result.cells = {str(k): (float(v[0]), float(v[1])) for k, v in graded.get("cells", {}).items()}
    elif code is None and decided:
        # Stopped at the hard limit: the test cells already decided keep their points.
        result.cells = decided
        result.score = sum(p for p, _ in decided.values())
        kinds.append("timeout")
        result.flags.append(f"timeout: grading stopped after {limit:g} s; {len(decided)} test cells were decided")
    else:
        result.status = Status.ERROR
        if code is None:
            result.detail = f"grading took longer than {limit:g} s and was stopped before any test was decided"
        elif done is not None and not done.get("ok"):
            lines = [ln for ln in str(done.get("error", "")).splitlines() if "Error" in ln or "ERROR" in ln]
            result.detail = f"nbgrader {done.get('stage')} failed: {(lines or ['see the worker log'])[-1].strip()}"
        else:
            result.detail = f"grader process failed (exit {code}): {stderr or 'no output'}"
        return result
    if done is not None and not done.get("ok") and done.get("stage") == "feedback":
        result.flags.append("feedback not generated")
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
        skip = ("no sandbox", "extra files", "symlinks ignored", "converted from")
        result.detail = "; ".join(f for f in result.flags if not f.startswith(skip))
    return result


def _kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _max_scores(gradebook_path: Path, modules: list[str]) -> dict[str, float]:
    with Gradebook(f"sqlite:///{gradebook_path}") as gradebook:
        return {m: float(gradebook.find_assignment(m).max_score) for m in modules}


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so a reader sees the old file or the new one, never half."""
    with atomic_write(path) as handle:
        handle.write(text.encode("utf-8"))


def _fingerprint(data: bytes, source_dir: Path, module: str, settings: GradeSettings) -> str:
    """Changes when the submission, the assignment source or a limit changes."""
    digest = hashlib.sha256()
    source = source_dir / module / f"{module}.ipynb"
    for chunk in (data, source.read_bytes() if source.is_file() else b"<none>"):
        digest.update(chunk)
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
    # Links are listed (and reported), never followed.
    entries = sorted(p for p in submissions.iterdir() if not p.name.startswith("."))
    students = [p.name for p in entries if p.is_symlink() or p.is_dir()]
    if not students:
        raise ValueError(
            f"{submissions}: no student folders; expected SUBMISSIONS_DIR/<student>/<module>/<module>.ipynb"
        )
    if modules:
        chosen = resolve_modules(source_dir, modules)
    else:
        submitted = {
            p.name for s in students if not (submissions / s).is_symlink() for p in (submissions / s).iterdir()
        }
        chosen = [m for m in resolve_modules(source_dir, None) if m in submitted]
        if not chosen:
            raise ValueError(f"{submissions}: no student folder holds a known module; name one with --module")
    bwrap, reason = sandbox_status(settings.sandbox)
    if settings.sandbox == "bwrap" and not bwrap:
        raise RuntimeError(f"--sandbox bwrap was asked for, but {reason}")
    if not bwrap:
        log.warning("grading without a sandbox", reason=reason, missing=MISSING_PROTECTIONS)
    secret = tuple(str(p) for p in (source_dir, out_dir, submissions, grading_dir()))
    gradebook = _prepare_template(out_dir, source_dir, chosen, settings)
    run = _Run(
        submissions,
        course_root,
        out_dir,
        source_dir,
        gradebook,
        settings,
        bwrap,
        secret,
        _max_scores(gradebook, chosen),
    )
    jobs = [(module, student) for module in chosen for student in students]
    limit_bytes = settings.max_notebook_mb * 2**20

    def grade(job: tuple[str, str]) -> SubmissionResult:
        module, student = job
        data, problem = _read_submission(submissions, student, module, limit_bytes)
        nb = None
        if problem is None:
            nb, problem = _load(data, student, module)
        if nb is not None and len(nb[0].cells) > settings.max_cells:
            detail = f"{len(nb[0].cells)} cells, more than the limit of {settings.max_cells} (--max-cells)"
            problem = SubmissionResult(student, module, Status.INVALID, detail=detail)
        path = _result_path(out_dir, student, module)
        seen = data if problem is None else f"{problem.status.value}\0{problem.detail}".encode() + data
        fingerprint = _fingerprint(seen, source_dir, module, settings)
        result = None if force else _load_result(path, fingerprint)
        if result is None:
            if run.stopping:
                raise KeyboardInterrupt
            if problem is not None:
                result = problem
                result.max_score = run.max_scores[module]
            else:
                try:
                    result = _grade_one(run, student, module, data, nb)
                except Exception as err:
                    detail = f"{type(err).__name__}: {err}"
                    result = SubmissionResult(
                        student, module, Status.ERROR, max_score=run.max_scores[module], detail=detail
                    )
                if run.stopping:  # interrupted while grading: nothing is recorded, it is graded next run
                    raise KeyboardInterrupt
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
