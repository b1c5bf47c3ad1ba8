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

from mlcraft.classroom.grading.launcher import ForkServerPool, kill_group
from mlcraft.classroom.grading.notebooks import InvalidNotebookError, read_notebook_bytes
from mlcraft.classroom.grading.paths import grading_dir
from mlcraft.classroom.grading.process import python_env
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


def _run_job(job: WorkerJob, limit: float, run: _Run) -> tuple[int | None, str]:
    """Run a worker on ``job``; ``(exit code or None when stopped at limit, stderr tail)``."""
    job.workspace.mkdir(parents=True, exist_ok=True)
    job_file = job.workspace / JOB_FILE
    job_file.write_text(job.model_dump_json(indent=1), encoding="utf-8")
    pid = 0

    def started(child: int) -> None:
        nonlocal pid
        pid = child
        with run.lock:
            run.children.add(child)
            if run.stopping:
                kill_group(child)

    try:
        outcome = run.servers.run(job_file, limit, started)
    except ConnectionError as err:
        return 1, f"the grading process could not run: {err}"
    finally:
        with run.lock:
            run.children.discard(pid)
    return outcome.code, outcome.stderr


def _prepare_template(run: _Run, modules: list[str]) -> Path:
    """A fresh gradebook that knows each module's graded cells; returns its path."""
    template = run.out_dir / "template"
    if template.exists():
        shutil.rmtree(template)
    job = WorkerJob(
        command="prepare", modules=modules, workspace=template, source_dir=run.source_dir, settings=run.settings
    )
    code, stderr = _run_job(job, 600, run)
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
    settings: GradeSettings
    bwrap: str
    secret: tuple[str, ...]
    servers: ForkServerPool
    gradebook: Path = Path()
    max_scores: dict[str, float] = field(default_factory=dict)
    children: set[int] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: bool = False


def _grade_one(run: _Run, student: str, module: str, data: bytes, nb: Any) -> SubmissionResult:
    """Grade one notebook in its own workspace (a private copy of the gradebook); here or on a
    Dask worker (:mod:`mlcraft.classroom.grading.cluster`)."""
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
    if not run.bwrap:
        result.flags.append("no sandbox")
    if result.feedback:
        feedback = run.out_dir / "feedback" / student / f"{module}.html"
        feedback.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(result.feedback, feedback)
        result.feedback = str(feedback)
    result.seconds = round(time.monotonic() - started, 3)
    return result


def _beside_flags(submissions: Path, student: str, module: str) -> list[str]:
    """Flags for files submitted beside the notebook (never copied, never importable)."""
    folder = submissions / student / module
    extra = sorted(p.name for p in folder.iterdir() if p.name != f"{module}.ipynb")
    if not extra:
        return []
    flags = [f"extra files ignored: {', '.join(extra)}"]
    links = [name for name in extra if (folder / name).is_symlink()]
    if links:
        flags.append(f"symlinks ignored: {', '.join(links)}")
    return flags


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
        return _result_from_json(data)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _result_json(result: SubmissionResult) -> dict[str, Any]:
    return {**asdict(result), "status": result.status.value}


def _result_from_json(data: dict[str, Any]) -> SubmissionResult:
    """The inverse of :func:`_result_json` (a stored result, or one sent back by a cluster worker)."""
    data = {**data, "status": Status(data["status"])}
    data["cells"] = {k: (float(v[0]), float(v[1])) for k, v in data["cells"].items()}
    return SubmissionResult(**data)


def grade_classroom(
    submissions: Path,
    course_root: Path,
    out_dir: Path,
    modules: list[str] | None = None,
    settings: GradeSettings | None = None,
    on_result: Callable[[SubmissionResult], None] | None = None,
    *,
    force: bool = False,
    scheduler: str | None = None,
) -> list[SubmissionResult]:
    """Autograde every student folder in ``submissions`` for ``modules`` (default: every module
    that at least one student submitted, among those the course has).

    With ``scheduler`` (a Dask scheduler's address, ``tcp://HOST:8786``) each notebook is sent
    to the cluster's workers and graded there (:mod:`mlcraft.classroom.grading.cluster`);
    everything else (reading, resuming, reports, feedback pages) happens here.

    Submissions with a result in ``out_dir`` from an earlier run (same notebook, source and
    limits) are not graded again unless ``force``. ``on_result`` is called after each
    submission (for progress display), reused ones included.

    Raises:
        FileNotFoundError: if ``submissions`` is not a folder.
        ValueError: for an unknown module, an empty classroom, or ``out_dir`` inside ``submissions``.
        RuntimeError: if ``settings.sandbox`` is ``"bwrap"`` and no sandbox can be built here.
        OSError: if ``scheduler`` cannot be reached.
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
    jobs = [(module, student) for module in chosen for student in students]
    with contextlib.ExitStack() as stack:
        client = None
        if scheduler:  # reached first: an address that is wrong fails before anything starts
            from mlcraft.classroom.grading.cluster import connect

            client = stack.enter_context(connect(scheduler))
        run = open_run(submissions, course_root, out_dir, chosen, settings, servers=1 if scheduler else len(jobs))
        stack.callback(run.servers.close)
        return _grade_all(run, jobs, force, on_result, client)


def open_run(
    submissions: Path, course_root: Path, out_dir: Path, modules: list[str], settings: GradeSettings, servers: int
) -> _Run:
    """What grading needs before the first submission: the sandbox, up to ``settings.workers``
    fork servers (at most ``servers``) and the template gradebook of ``modules``. The caller
    closes ``run.servers``.

    Raises:
        RuntimeError: if ``settings.sandbox`` is ``"bwrap"`` and no sandbox can be built here,
            or the sources cannot be loaded.
    """
    bwrap, reason = sandbox_status(settings.sandbox)
    if settings.sandbox == "bwrap" and not bwrap:
        raise RuntimeError(f"--sandbox bwrap was asked for, but {reason}")
    if not bwrap:
        log.warning("grading without a sandbox", reason=reason, missing=MISSING_PROTECTIONS)
    source_dir = course_root / "solutions"
    secret = tuple(str(p) for p in (source_dir, out_dir, submissions, grading_dir()))
    # Grading processes are forked from servers that did their imports once (see ``launcher``).
    pool = ForkServerPool(max(1, min(settings.workers, servers)), env=python_env())
    try:
        run = _Run(submissions, course_root, out_dir, source_dir, settings, bwrap, secret, pool)
        run.gradebook = _prepare_template(run, modules)
        run.max_scores = _max_scores(run.gradebook, modules)
    except BaseException:
        pool.close()
        raise
    return run


def _grade_all(
    run: _Run,
    jobs: list[tuple[str, str]],
    force: bool,
    on_result: Callable[[SubmissionResult], None] | None,
    client: Any,
) -> list[SubmissionResult]:
    submissions, out_dir, source_dir, settings = run.submissions, run.out_dir, run.source_dir, run.settings
    limit_bytes = settings.max_notebook_mb * 2**20

    def inspect(job: tuple[str, str]) -> _Pending:
        """Read and check one submission; its earlier result when it is unchanged."""
        module, student = job
        data, problem = _read_submission(submissions, student, module, limit_bytes)
        nb = None
        if problem is None:
            nb, problem = _load(data, student, module)
        if nb is not None and len(nb[0].cells) > settings.max_cells:
            detail = f"{len(nb[0].cells)} cells, more than the limit of {settings.max_cells} (--max-cells)"
            problem = SubmissionResult(student, module, Status.INVALID, detail=detail)
        seen = data if problem is None else f"{problem.status.value}\0{problem.detail}".encode() + data
        fingerprint = _fingerprint(seen, source_dir, module, settings)
        done = None if force else _load_result(_result_path(out_dir, student, module), fingerprint)
        if done is None and problem is not None:
            problem.max_score = run.max_scores[module]
            done = _record(problem, fingerprint)
        return _Pending(module, student, data, nb, fingerprint, done)

    def _record(result: SubmissionResult, fingerprint: str) -> SubmissionResult:
        path = _result_path(out_dir, result.student, result.module)
        _write_atomic(path, json.dumps({**_result_json(result), "fingerprint": fingerprint}, indent=1))
        log.info(
            "submission", student=result.student, module=result.module, status=result.status.value, score=result.score
        )
        return result

    def finish(pending: _Pending, result: SubmissionResult) -> SubmissionResult:
        """A freshly graded submission: flags for what was beside it, then saved."""
        result.flags += _beside_flags(submissions, pending.student, pending.module)
        return _record(result, pending.fingerprint)

    def failed(pending: _Pending, err: BaseException) -> SubmissionResult:
        detail = f"{type(err).__name__}: {err}"
        return SubmissionResult(
            pending.student, pending.module, Status.ERROR, max_score=run.max_scores[pending.module], detail=detail
        )

    if client is not None:
        from mlcraft.classroom.grading.cluster import grade_on_cluster

        return grade_on_cluster(run, jobs, client, inspect, finish, failed, on_result)

    def grade(job: tuple[str, str]) -> SubmissionResult:
        pending = inspect(job)
        result = pending.done
        if result is None:
            if run.stopping:
                raise KeyboardInterrupt
            try:
                result = _grade_one(run, pending.student, pending.module, pending.data, pending.nb)
            except Exception as err:
                result = failed(pending, err)
            if run.stopping:  # interrupted while grading: nothing is recorded, it is graded next run
                raise KeyboardInterrupt
            result = finish(pending, result)
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
            for child in run.children:
                kill_group(child)
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()
    write_reports(results, out_dir)
    return results


@dataclass
class _Pending:
    """One submission, read and checked; ``done`` when it needs no grading."""

    module: str
    student: str
    data: bytes
    nb: Any
    fingerprint: str
    done: SubmissionResult | None


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
