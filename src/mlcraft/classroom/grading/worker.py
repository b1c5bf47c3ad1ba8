"""Grade one submission in its own process: ``python -m mlcraft.classroom.grading.worker JOB_FILE``.

``JOB_FILE`` is a :class:`WorkerJob` (JSON) written by :mod:`mlcraft.classroom.grading.classroom`. The
nbgrader configuration is built here, in Python, from the job (:func:`nbgrader_config`): no
configuration file is generated or read.

The worker reports through one channel, the JSON-lines file :data:`EVENTS_FILE` in the
workspace, each line written whole and flushed as soon as it is known:

- ``{"event": "tampered", "items": [...]}``: protected cells the student changed (restored);
- ``{"event": "flag", "cell", "kind", "detail"}``: a crash, timeout, memory error or cut output;
- ``{"event": "cell", "cell", "points", "max_points"}``: a test cell's verdict, once decided;
- ``{"event": "graded", "score", "max_score", "cells"}``: the gradebook's totals;
- ``{"event": "feedback", "path"}``: the feedback page, locked down;
- ``{"event": "done", "ok", "stage", "error"}``: the last line.

The process caps its own data memory (``grader_memory_mb``) before anything else.

A worker killed at its wall-clock limit loses nothing decided before: the classroom reads
the verdicts already written. Running each submission in a fresh process means a submission
that crashes nbgrader cannot take the others down. ``prepare`` jobs load the assignment
sources into the run's template gradebook.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any, Literal

import nbformat
from nbconvert.preprocessors import ClearMetadataPreprocessor, CSSHTMLHeaderPreprocessor
from nbgrader import preprocessors as nb
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.apps import NbGraderAPI
from traitlets.config import Config

from mlcraft.classroom.grading.execute import DeduplicateCells, GuardedExecute, HonestSaveAutoGrades, SanitizeCells
from mlcraft.classroom.grading.feedback import SafeOutputs, lock_down
from mlcraft.classroom.grading.paths import nbgrader_ignore_patterns
from mlcraft.classroom.grading.settings import GradeSettings
from mlcraft.classroom.grading.tamper import detect_tampering, restore_metadata, restore_missing_cells
from mlcraft.config import FrozenConfig

__all__ = ["EVENTS_FILE", "EventLog", "WorkerJob", "main", "nbgrader_config"]

EVENTS_FILE = "events.jsonl"
JOB_FILE = "job.json"


class WorkerJob(FrozenConfig):
    """What one grading process does."""

    command: Literal["prepare", "grade"]
    modules: list[str]  # prepare: every module of the run; grade: the one graded
    student: str = ""
    workspace: Path
    source_dir: Path
    settings: GradeSettings
    bwrap: str = ""  # bubblewrap executable; '' grades without a sandbox
    secret: tuple[str, ...] = ()  # folders the sandbox must never show
    deadline: float = 0.0  # time.time() when the submission's time is up


class EventLog:
    """Append-only JSON lines, each written with one ``write(2)`` and flushed to disk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def write(self, event: dict[str, Any]) -> None:
        os.write(self._fd, (json.dumps(event, default=str) + "\n").encode("utf-8"))
        os.fsync(self._fd)

    def close(self) -> None:
        os.close(self._fd)


def nbgrader_config(job: WorkerJob, on_event: Any = None) -> Config:
    """nbgrader's configuration for ``job``, with the preprocessors as classes, not strings."""
    ws, settings = job.workspace, job.settings
    c = Config()
    c.CourseDirectory.root = str(ws)
    c.CourseDirectory.source_directory = str(job.source_dir)
    c.CourseDirectory.release_directory = str(ws / "release")
    c.CourseDirectory.submitted_directory = str(ws / "submitted")
    c.CourseDirectory.autograded_directory = str(ws / "autograded")
    c.CourseDirectory.feedback_directory = str(ws / "feedback")
    c.CourseDirectory.db_url = f"sqlite:///{ws / 'gradebook.db'}"
    c.CourseDirectory.ignore = nbgrader_ignore_patterns(job.source_dir)
    c.OverwriteCells.add_missing_cells = True
    c.Autograde.sanitize_preprocessors = [
        nb.ClearOutput,
        DeduplicateCells,
        nb.OverwriteKernelspec,
        nb.OverwriteCells,
        SanitizeCells,
        nb.CheckCellMetadata,
    ]
    c.Autograde.autograde_preprocessors = [
        GuardedExecute,
        nb.IgnorePattern,
        ClearMetadataPreprocessor,
        nb.LimitOutput,
        HonestSaveAutoGrades,
        nb.AssignLatePenalties,
        nb.CheckCellMetadata,
    ]
    c.GuardedExecute.timeout = settings.cell_timeout_s
    c.GuardedExecute.extra_arguments = ["--IPKernelApp.log_level=ERROR"]
    c.GuardedExecute.max_output_bytes = settings.max_output_bytes
    c.GuardedExecute.max_notebook_output_bytes = settings.max_notebook_output_mb * 2**20
    c.GuardedExecute.deadline = job.deadline
    c.GuardedExecute.on_event = on_event
    c.SandboxKernelManager.bwrap = job.bwrap
    c.SandboxKernelManager.secret = list(job.secret)
    c.SandboxKernelManager.memory_bytes = settings.memory_mb * 2**20
    c.SandboxKernelManager.file_size_bytes = settings.scratch_mb * 2**20
    c.SandboxKernelManager.scratch_bytes = settings.scratch_mb * 2**20
    c.SandboxKernelManager.processes = settings.max_processes
    c.GenerateFeedback.preprocessors = [nb.GetGrades, CSSHTMLHeaderPreprocessor, SafeOutputs]
    c.HTMLExporter.sanitize_html = True
    return c


def _prepare(job: WorkerJob) -> int:
    api = NbGraderAPI(config=nbgrader_config(job))
    for module in job.modules:
        result = api.generate_assignment(module, force=True)
        if not result.get("success"):
            print(str(result.get("log", "")) + str(result.get("error", "")), file=sys.stderr)
            return 1
    return 0


def _scores(job: WorkerJob, module: str) -> dict[str, Any]:
    with Gradebook(f"sqlite:///{job.workspace / 'gradebook.db'}") as gradebook:
        try:
            submission = gradebook.find_submission(module, job.student)
        except MissingEntry:
            raise RuntimeError("nbgrader recorded no submission") from None
        cells = {
            grade.name: [float(grade.score), float(grade.max_score)]
            for notebook in submission.notebooks
            for grade in notebook.grades
        }
        return {"score": float(submission.score), "max_score": float(submission.max_score), "cells": cells}


def _restore(job: WorkerJob, module: str, db_url: str) -> list[str]:
    """Report tampering, then put the source's nbgrader metadata back on the submitted notebook."""
    submitted = job.workspace / "submitted" / job.student / module / f"{module}.ipynb"
    notebook = nbformat.read(submitted, as_version=4)
    found = [str(t) for t in detect_tampering(notebook, db_url, module, module)]
    forged = restore_metadata(notebook, db_url, module, module)
    found += [str(t) for t in forged if str(t) not in found]
    missing = restore_missing_cells(notebook, db_url, module, module)
    if forged or missing:
        nbformat.write(notebook, submitted)
    return found


def _grade(job: WorkerJob, log: EventLog) -> int:
    module = job.modules[0]
    config = nbgrader_config(job, log.write)
    stage = "tamper check"
    try:
        log.write({"event": "tampered", "items": _restore(job, module, config.CourseDirectory.db_url)})
        stage = "autograde"
        api = NbGraderAPI(config=config)
        result = api.autograde(module, job.student, force=True, create=True)
        if not result.get("success"):
            error = str(result.get("log", "")) + str(result.get("error", ""))
            log.write({"event": "done", "ok": False, "stage": stage, "error": error[-4000:]})
            return 1
        log.write({"event": "graded", **_scores(job, module)})
        if job.settings.feedback:
            stage = "feedback"
            result = api.generate_feedback(module, job.student, force=True)
            page = job.workspace / "feedback" / job.student / module / f"{module}.html"
            if not result.get("success") or not page.is_file():
                error = str(result.get("log", "")) + str(result.get("error", ""))
                log.write({"event": "done", "ok": False, "stage": stage, "error": error[-4000:]})
                return 1
            lock_down(page)
            log.write({"event": "feedback", "path": str(page)})
    except Exception as err:
        detail = "".join(traceback.format_exception(type(err), err, err.__traceback__))[-4000:]
        log.write({"event": "done", "ok": False, "stage": stage, "error": detail})
        return 1
    log.write({"event": "done", "ok": True, "stage": stage, "error": ""})
    return 0


def _limit_memory(megabytes: int) -> None:
    """Cap this process's data memory (``RLIMIT_DATA``: heap and private writable mappings, not
    the address space PyTorch or CUDA reserve): whatever a hostile kernel sends, the grading
    process fails alone instead of exhausting the machine."""
    try:
        import resource

        _, hard = resource.getrlimit(resource.RLIMIT_DATA)
        limit = megabytes * 2**20 if hard == resource.RLIM_INFINITY else min(megabytes * 2**20, hard)
        resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
    except (ImportError, ValueError, OSError, AttributeError):  # not on this platform
        pass


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m mlcraft.classroom.grading.worker JOB_FILE", file=sys.stderr)
        return 2
    job = WorkerJob.model_validate_json(Path(argv[0]).read_text(encoding="utf-8"))
    _limit_memory(job.settings.grader_memory_mb)
    if job.command == "prepare":
        return _prepare(job)
    log = EventLog(job.workspace / EVENTS_FILE)
    try:
        return _grade(job, log)
    finally:
        log.close()


if __name__ == "__main__":
    code = main(sys.argv[1:])
    # Everything is on disk (the event log is synced, the kernel is gone): skip the interpreter's
    # slow teardown of PyTorch and friends.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
