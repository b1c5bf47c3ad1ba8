"""Grading a class across machines with Dask (``mlcraft grade SUBMISSIONS --scheduler tcp://HOST:8786``).

The instructor's machine (the client) reads every submission, checks it, skips those already
graded (resumable as a local run), and sends each remaining notebook's *bytes* to the cluster as
one task: no shared filesystem is needed. A Dask worker (``dask worker tcp://HOST:8786``, started
on each grading machine in a folder holding the same course checkout, or with
``MLCRAFT_COURSE_ROOT`` pointing at one) grades it exactly as a local run would: the same
sandbox, limits, fork servers and verdict checks, set up once per worker process and module
(:func:`mlcraft.classroom.grading.classroom.open_run`). The task returns the result and the
feedback page; the client writes both, so ``grades.csv``, ``report.json`` and the feedback
pages are the same as a local run's.

A worker that dies mid-run loses nothing: the scheduler gives its tasks to another worker
(Dask retries a task whose worker died, up to its ``allowed-failures``), and results already
written are kept. A worker whose course differs from the client's (another version of the
assignment source) refuses the task, which is reported as an ``error`` naming the worker.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcraft.classroom.grading.paths import CourseLayoutError, find_course_root
from mlcraft.classroom.grading.settings import GradeSettings
from mlcraft.config import FrozenConfig
from mlcraft.utils.logging import get_logger

if TYPE_CHECKING:
    from mlcraft.classroom.grading.classroom import SubmissionResult, _Pending, _Run

__all__ = ["RemoteJob", "connect", "grade_on_cluster", "grade_remote"]

log = get_logger(__name__)

# Seconds to reach the scheduler before giving up with a clear error.
_CONNECT_TIMEOUT_S = 30


class RemoteJob(FrozenConfig):
    """One notebook to grade on a worker."""

    student: str
    module: str
    notebook: bytes
    settings: GradeSettings
    source_sha256: str  # of the client's assignment source: the worker's must match


def _source_digest(course_root: Path, module: str) -> str:
    return hashlib.sha256((course_root / "solutions" / module / f"{module}.ipynb").read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------------------
# The worker side: one grading set-up per (course, module, settings) in each worker process.

_RUNS: dict[tuple[str, str, str], _Run] = {}
_RUNS_LOCK = threading.Lock()
_SCRATCH: list[Path] = []


def _close_runs() -> None:
    with _RUNS_LOCK:
        for run in _RUNS.values():
            run.servers.close()
        _RUNS.clear()
        for folder in _SCRATCH:
            shutil.rmtree(folder, ignore_errors=True)


def _worker_threads() -> int:
    try:
        from distributed import get_worker

        return max(1, int(get_worker().state.nthreads))
    except (ImportError, ValueError, AttributeError):
        return 1


def _worker_run(course_root: Path, module: str, settings: GradeSettings) -> _Run:
    from mlcraft.classroom.grading.classroom import open_run

    key = (str(course_root), module, settings.model_dump_json())
    with _RUNS_LOCK:
        if key not in _RUNS:
            if not _SCRATCH:
                atexit.register(_close_runs)
            folder = Path(tempfile.mkdtemp(prefix="mlcraft-dask-"))
            _SCRATCH.append(folder)
            (folder / "class").mkdir()
            threads = _worker_threads()
            local = settings.model_copy(update={"workers": threads})
            _RUNS[key] = open_run(folder / "class", course_root, folder / "out", [module], local, servers=threads)
        return _RUNS[key]


def grade_remote(job: RemoteJob) -> dict[str, Any]:
    """Grade ``job`` on this machine (a Dask task); the result as JSON data and the feedback page.

    Raises:
        RuntimeError: if this machine has no course checkout or another version of the source.
    """
    from mlcraft.classroom.grading.classroom import _grade_one, _load, _result_json

    host = socket.gethostname()
    try:
        course_root = find_course_root()
    except CourseLayoutError as err:
        raise RuntimeError(f"worker on {host}: {err}") from None
    if _source_digest(course_root, job.module) != job.source_sha256:
        raise RuntimeError(
            f"worker on {host} has another version of {job.module} in {course_root}; "
            "install the same course commit on every grading machine"
        )
    nb, problem = _load(job.notebook, job.student, job.module)
    if problem is not None:  # the client checked it already; a different nbformat here would say so
        return {"result": _result_json(problem), "feedback": None, "host": host}
    run = _worker_run(course_root, job.module, job.settings)
    result = _grade_one(run, job.student, job.module, job.notebook, nb)
    feedback = Path(result.feedback).read_bytes() if result.feedback else None
    result.feedback = ""
    return {"result": _result_json(result), "feedback": feedback, "host": host}


# ---------------------------------------------------------------------------------------------
# The client side.


def _from_payload(payload: dict[str, Any], out_dir: Path) -> SubmissionResult:
    from mlcraft.classroom.grading.classroom import _result_from_json

    result = _result_from_json(payload["result"])
    if payload.get("feedback"):
        page = out_dir / "feedback" / result.student / f"{result.module}.html"
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_bytes(payload["feedback"])
        with contextlib.suppress(OSError):
            os.chmod(page, 0o444)
        result.feedback = str(page)
    return result


def connect(scheduler: str) -> Any:
    """A Dask client of the scheduler at ``scheduler`` (a context manager).

    Raises:
        OSError: if the scheduler cannot be reached.
        ImportError: if ``distributed`` is not installed.
    """
    try:
        from distributed import Client
    except ImportError as err:
        raise ImportError("grading on a cluster needs Dask: pip install 'mlcraft[classroom]'") from err
    try:
        return Client(scheduler, timeout=_CONNECT_TIMEOUT_S)  # type: ignore[no-untyped-call]
    except (OSError, TimeoutError, ValueError) as err:
        raise OSError(
            f"cannot reach the Dask scheduler at {scheduler} ({err}); start it with `dask scheduler` "
            "and check the address"
        ) from None


def grade_on_cluster(
    run: _Run,
    jobs: list[tuple[str, str]],
    client: Any,
    inspect: Callable[[tuple[str, str]], _Pending],
    finish: Callable[[_Pending, SubmissionResult], SubmissionResult],
    failed: Callable[[_Pending, BaseException], SubmissionResult],
    on_result: Callable[[SubmissionResult], None] | None,
) -> list[SubmissionResult]:
    """Grade ``jobs`` on the Dask cluster of ``client`` (:func:`connect`); see the module docstring."""
    from distributed import as_completed

    from mlcraft.classroom.grading.classroom import write_reports

    results: dict[tuple[str, str], SubmissionResult] = {}
    todo: list[_Pending] = []
    for job in jobs:
        pending = inspect(job)
        if pending.done is not None:
            results[job] = pending.done
            if on_result is not None:
                on_result(pending.done)
        else:
            todo.append(pending)
    if todo:
        digests = {p.module: _source_digest(run.course_root, p.module) for p in todo}
        futures = {}
        for pending in todo:
            remote = RemoteJob(
                student=pending.student,
                module=pending.module,
                notebook=pending.data,
                settings=run.settings,
                source_sha256=digests[pending.module],
            )
            key = f"mlcraft-grade-{pending.module}-{pending.student}-{pending.fingerprint[:16]}"
            futures[client.submit(grade_remote, remote, key=key, pure=False)] = pending
        log.info("sent to the cluster", scheduler=client.scheduler.address, submissions=len(futures))
        try:
            for future in as_completed(futures):  # type: ignore[no-untyped-call]
                pending = futures[future]
                try:
                    result = _from_payload(future.result(), run.out_dir)
                except Exception as err:
                    result = failed(pending, err)
                result = finish(pending, result)
                results[(pending.module, pending.student)] = result
                if on_result is not None:
                    on_result(result)
        except BaseException:
            client.cancel(list(futures))  # Ctrl-C: finished results are on disk
            raise
    ordered = [results[job] for job in jobs]
    write_reports(ordered, run.out_dir)
    return ordered
