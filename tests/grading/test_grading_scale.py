"""`grade_classroom` at scale: parallel workers lose and duplicate nothing; runs resume.

Uses the tiny course of ``conftest.py`` with trivially small notebooks and feedback off, so a
submission costs a few seconds of CPU (a grading process, its judge and a kernel).
The tests are slow by nature: the point is many submissions and real grading processes.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from mlcraft.classroom.grading.classroom import GradeSettings, Status, SubmissionResult, grade_classroom

if TYPE_CHECKING:  # mypy knows tests/grading/conftest.py by its full module name
    from tests.grading.conftest import ANSWERS, MODULE, answered
else:  # pytest puts tests/grading on sys.path and imports the file as `conftest`
    from conftest import ANSWERS, MODULE, answered

pytestmark = pytest.mark.slow

FAST = GradeSettings(cell_timeout_s=20, submission_timeout_s=120, workers=3, feedback=False)
EXPECTED_SCORE = {"correct": 3.0, "partial": 1.0}


def make_classroom(root: Path, course: Path, count: int) -> dict[str, tuple[Status, float]]:
    """``count`` students cycling through correct / partial / invalid; returns the expected results."""
    release_nb = course / "exercises" / MODULE / f"{MODULE}.ipynb"
    import nbformat

    expected = {}
    for index in range(count):
        student = f"s{index:03d}"
        target = root / student / MODULE / f"{MODULE}.ipynb"
        target.parent.mkdir(parents=True)
        kind = ("correct", "partial", "invalid")[index % 3]
        if kind == "invalid":
            target.write_text("{not json", encoding="utf-8")
            expected[student] = (Status.INVALID, 0.0)
        else:
            nbformat.write(answered(release_nb, ANSWERS[kind]), target)
            expected[student] = (Status.GRADED, EXPECTED_SCORE[kind])
    return expected


def _mtimes(out: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in (out / "results" / MODULE).glob("*.json")}


def test_fifty_submissions_with_concurrent_workers_then_resume(tiny_course: Path, tmp_path: Path) -> None:
    classroom, out = tmp_path / "class", tmp_path / "out"
    expected = make_classroom(classroom, tiny_course, 50)
    seen: list[str] = []
    results = grade_classroom(classroom, tiny_course, out, settings=FAST, on_result=lambda r: seen.append(r.student))
    assert sorted(seen) == sorted(expected), "each submission reported exactly once"
    assert {r.student: (r.status, r.score) for r in results} == expected
    rows = list(csv.DictReader((out / "grades.csv").open(encoding="utf-8")))
    assert [r["student"] for r in rows] == sorted(expected), "one CSV row per submission, none lost or doubled"
    assert {r["student"]: float(r["score"]) for r in rows} == {s: v[1] for s, v in expected.items()}
    assert all(r.max_score == 3.0 for r in results)

    # Second run: nothing is graded again; a changed notebook is.
    before = _mtimes(out)
    changed = classroom / "s000" / MODULE / f"{MODULE}.ipynb"
    changed.write_text("{}", encoding="utf-8")
    again = grade_classroom(classroom, tiny_course, out, settings=FAST)
    after = _mtimes(out)
    assert [name for name in before if after[name] != before[name]] == ["s000.json"]
    regraded = {r.student: r for r in again}
    assert regraded["s000"].status is Status.INVALID
    assert all((regraded[s].status, regraded[s].score) == v for s, v in expected.items() if s != "s000")


def test_force_regrades_and_changed_limits_regrade(tiny_course: Path, tmp_path: Path) -> None:
    classroom, out = tmp_path / "class", tmp_path / "out"
    make_classroom(classroom, tiny_course, 2)
    grade_classroom(classroom, tiny_course, out, settings=FAST)
    first = _mtimes(out)
    grade_classroom(classroom, tiny_course, out, settings=FAST, force=True)
    assert all(_mtimes(out)[n] != first[n] for n in first), "--force grades everything again"
    second = _mtimes(out)
    grade_classroom(classroom, tiny_course, out, settings=FAST.model_copy(update={"cell_timeout_s": 21}))
    assert all(_mtimes(out)[n] != second[n] for n in second), "new limits invalidate earlier results"


_RUNNER = """
import sys
from pathlib import Path
from mlcraft.classroom.grading.classroom import GradeSettings, grade_classroom
settings = GradeSettings(cell_timeout_s=20, submission_timeout_s=120, workers=2, feedback=False)
grade_classroom(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), settings=settings)
"""


def _wait_for_results(out: Path, count: int, proc: subprocess.Popen[bytes], limit_s: float = 240) -> None:
    deadline = time.monotonic() + limit_s
    while len(_mtimes(out)) < count:
        assert proc.poll() is None, "grading ended before it could be interrupted"
        assert time.monotonic() < deadline, "grading made no progress"
        time.sleep(0.2)


def _workers_of(out: Path) -> list[int]:
    """Grading processes still running for ``out`` (their working folder is under it)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if cwd.startswith(str(out)):
            pids.append(int(entry.name))
    return pids


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill"])
def test_interrupted_run_resumes_without_regrading(tiny_course: Path, tmp_path: Path, how: signal.Signals) -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("reads /proc")
    classroom, out = tmp_path / "class", tmp_path / "out"
    expected = make_classroom(classroom, tiny_course, 9)
    env = {**os.environ, "MLCRAFT_COURSE_ROOT": str(tiny_course)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _RUNNER, str(classroom), str(tiny_course), str(out)], env=env, start_new_session=True
    )
    try:
        _wait_for_results(out, 4, proc)  # the 3 invalid ones are instant; at least one graded
        os.kill(proc.pid, how)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    # Ctrl-C stops every grading process; a killed run takes them along too (each dies with its
    # server, each server with the run), so nothing keeps grading for a run that is gone.
    deadline = time.monotonic() + 20
    while _workers_of(out) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _workers_of(out) == [], f"grading processes outlived the run ({how.name})"
    assert not (out / "grades.csv").exists(), "an interrupted run writes no partial grades.csv"
    done = _mtimes(out)
    assert 4 <= len(done) < 9
    resumed: list[SubmissionResult] = grade_classroom(classroom, tiny_course, out, settings=FAST)
    assert {n: t for n, t in _mtimes(out).items() if n in done} == done, "finished submissions were graded again"
    assert {r.student: (r.status, r.score) for r in resumed} == expected
    rows = list(csv.DictReader((out / "grades.csv").open(encoding="utf-8")))
    assert [r["student"] for r in rows] == sorted(expected)
