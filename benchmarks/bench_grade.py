"""`mlcraft grade --workers 2` vs plain sequential `nbgrader autograde`, same submissions, same run.

Builds ``--count`` submissions of one module (the reference answers, from the validity harness)
and grades them:

1. **peer**: ``nbgrader autograde MODULE`` once over the whole class, sequential, no sandbox,
   no limits, no feedback (nbgrader's default pipeline);
2. **ours**: :func:`mlcraft.classroom.grading.classroom.grade_classroom` with ``--workers`` workers,
   sandbox, limits, tamper report and every test cell judged outside the kernel, feedback off
   (as the peer);

and prints the wall times and their ratio. Then the sandbox's cost per submission: one
submission's grading process run ``--rounds`` times with the sandbox on and off, alternating
(medians), and the cost of starting a process in the sandbox alone.

    python benchmarks/bench_grade.py [--module 00_orientation] [--count 40] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from mlcraft.classroom.grading.classroom import GradeSettings, Status, grade_classroom
from mlcraft.classroom.grading.limits import LimitSettings
from mlcraft.classroom.grading.notebooks import read_notebook
from mlcraft.classroom.grading.paths import nbgrader_ignore_patterns
from mlcraft.classroom.grading.process import python_env
from mlcraft.classroom.grading.sandbox import SandboxLayout, sandbox_status, sandboxed
from mlcraft.classroom.grading.validity import build_submission
from mlcraft.classroom.grading.worker import EVENTS_FILE, JOB_FILE, WorkerJob

REPO = Path(__file__).resolve().parents[1]


def make_classroom(folder: Path, module: str, count: int) -> None:
    source = read_notebook(REPO / "solutions" / module / f"{module}.ipynb")
    release = read_notebook(REPO / "exercises" / module / f"{module}.ipynb")
    submission = build_submission(source, release)
    for index in range(count):
        target = folder / f"s{index:03d}" / module / f"{module}.ipynb"
        target.parent.mkdir(parents=True)
        nbformat.write(submission, target)


def nbgrader_sequential(classroom: Path, module: str, work: Path) -> float:
    """Seconds for one plain ``nbgrader autograde MODULE`` over every student."""
    source_dir = REPO / "solutions"
    config = {
        "CourseDirectory.root": str(work),
        "CourseDirectory.source_directory": str(source_dir),
        "CourseDirectory.release_directory": str(work / "release"),
        "CourseDirectory.submitted_directory": str(classroom),
        "CourseDirectory.autograded_directory": str(work / "autograded"),
        "CourseDirectory.feedback_directory": str(work / "feedback"),
        "CourseDirectory.db_url": f"sqlite:///{work / 'gradebook.db'}",
        "CourseDirectory.ignore": nbgrader_ignore_patterns(source_dir),
        "OverwriteCells.add_missing_cells": True,
        "Execute.timeout": 120,
    }
    work.mkdir(parents=True)
    lines = ["c = get_config()  # noqa: F821", *(f"c.{k} = {v!r}" for k, v in config.items())]
    (work / "nbgrader_config.py").write_text("\n".join(lines) + "\n", encoding="utf-8")

    def nbgrader(*args: str) -> None:
        proc = subprocess.run(
            [sys.executable, "-m", "nbgrader", *args], cwd=work, env=python_env(), capture_output=True, text=True
        )
        if proc.returncode != 0:
            raise RuntimeError(f"nbgrader {args[0]} failed:\n{proc.stderr[-2000:]}")

    nbgrader("generate_assignment", module, "--force")
    start = time.perf_counter()
    nbgrader("autograde", module)
    return time.perf_counter() - start


def ours(classroom: Path, module: str, out: Path, workers: int, sandbox: str) -> tuple[float, list[float]]:
    """Wall seconds for the whole run, and each submission's own seconds."""
    settings = GradeSettings(workers=workers, sandbox=sandbox, feedback=False)  # type: ignore[arg-type]
    start = time.perf_counter()
    results = grade_classroom(classroom, REPO, out, [module], settings)
    elapsed = time.perf_counter() - start
    bad = [r for r in results if r.status is not Status.GRADED or r.score != r.max_score]
    if bad:
        raise RuntimeError(f"the reference answers did not score full marks: {bad[0]}")
    return elapsed, [r.seconds for r in results]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--module", default="00_orientation")
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--skip-peer", action="store_true", help="only measure the sandbox's overhead")
    args = parser.parse_args()
    bwrap, reason = sandbox_status("auto")
    print(f"{args.count} submissions of {args.module}; {os.cpu_count()} CPU cores; sandbox: {bwrap or reason}")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        os.environ["MLCRAFT_GRADING_DIR"] = str(tmp / "grading-home")
        classroom = tmp / "class"
        make_classroom(classroom, args.module, args.count)
        if not args.skip_peer:
            peer = nbgrader_sequential(classroom, args.module, tmp / "nbgrader")
            mine = ours(classroom, args.module, tmp / "ours", args.workers, "auto")[0]
            print(f"nbgrader autograde, sequential     : {peer:7.1f} s ({peer / args.count:.2f} s per submission)")
            print(
                f"mlcraft grade --workers {args.workers}          : {mine:7.1f} s ({mine / args.count:.2f} s/submission)"
            )
            print(f"throughput ratio (ours / nbgrader)  : {peer / mine:.2f}x")

        on, off = worker_ab(tmp / "ab", args.module, args.rounds)
        print(
            f"one submission's grading process    : sandbox off {off:.2f} s, on {on:.2f} s (medians of {args.rounds})"
        )
        print(f"sandbox overhead per submission     : {on - off:+.2f} s ({100 * (on - off) / off:+.1f}%)")
        if bwrap:
            start = sandbox_start_cost(bwrap, tmp)
            print(f"bwrap start alone (python -c pass)  : {1000 * start:+.0f} ms (median of 15, vs no sandbox)")


def worker_ab(folder: Path, module: str, rounds: int) -> tuple[float, float]:
    """Median seconds of one submission's grading process with the sandbox on and off.

    The same workspace is graded again and again, alternating on and off, so both see the same
    files, caches and machine noise; only the job's sandbox setting differs.
    """
    make_classroom(folder / "class", module, 1)
    ours(folder / "class", module, folder / "out", 1, "auto")
    workspace = folder / "out" / "work" / module / "s000"
    job = WorkerJob.model_validate_json((workspace / JOB_FILE).read_text(encoding="utf-8"))
    bwrap = sandbox_status("auto")[0]
    times: dict[str, list[float]] = {"on": [], "off": []}
    for round_index in range(rounds):
        for mode in ("on", "off") if round_index % 2 == 0 else ("off", "on"):
            this = job.model_copy(update={"bwrap": bwrap if mode == "on" else "", "deadline": 0.0})
            (workspace / JOB_FILE).write_text(this.model_dump_json(), encoding="utf-8")
            (workspace / EVENTS_FILE).unlink(missing_ok=True)
            start = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-m", "mlcraft.classroom.grading.worker", str(workspace / JOB_FILE)],
                cwd=workspace,
                env=python_env(),
                capture_output=True,
                text=True,
                check=False,
            )
            times[mode].append(time.perf_counter() - start)
            if '"ok": true' not in (workspace / EVENTS_FILE).read_text(encoding="utf-8"):
                raise RuntimeError(f"grading failed:\n{proc.stderr[-2000:]}")
    return statistics.median(times["on"]), statistics.median(times["off"])


def sandbox_start_cost(bwrap: str, tmp: Path) -> float:
    """Median extra seconds to start ``python -c pass`` inside the kernel's sandbox (user
    namespace, allow-list root, privilege drop and limits included)."""
    private = tmp / "start-private"
    private.mkdir(mode=0o700)
    layout = SandboxLayout(private=private, scratch_bytes=2**24)
    limits = LimitSettings(memory_bytes=8 * 2**30, file_size_bytes=2**24)
    plain = [sys.executable, "-c", "pass"]
    times: dict[str, list[float]] = {"plain": [], "boxed": []}
    for _ in range(15):
        start = time.perf_counter()
        subprocess.run(plain, check=True, capture_output=True)
        times["plain"].append(time.perf_counter() - start)
        start = time.perf_counter()
        with sandboxed(bwrap, layout, limits, plain) as (argv, kwargs):
            subprocess.run(argv, check=True, capture_output=True, **kwargs)
        times["boxed"].append(time.perf_counter() - start)
    return statistics.median(times["boxed"]) - statistics.median(times["plain"])


if __name__ == "__main__":
    main()
