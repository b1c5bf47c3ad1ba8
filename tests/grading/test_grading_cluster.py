"""Grading across machines on Dask (``mlcraft grade --scheduler``), on loopback.

A scheduler and two workers run as separate processes (``dask scheduler``, ``dask worker``), each
worker with its own grading folder, as on separate machines; the client sends notebook bytes
only. The results must equal a local run's; a worker killed mid-run must lose nothing; a worker
with another version of the course must refuse; an unreachable scheduler is a clear error.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from mlcraft.classroom.grading.classroom import GradeSettings, Status, SubmissionResult, grade_classroom

if TYPE_CHECKING:
    from tests.grading.conftest import ANSWERS, MODULE, answered
else:
    from conftest import ANSWERS, MODULE, answered

pytest.importorskip("distributed")
pytestmark = pytest.mark.slow

SETTINGS = GradeSettings(cell_timeout_s=30, submission_timeout_s=120, workers=1, feedback=True)
DASK = Path(sys.executable).parent / "dask"
# Each correct answer waits a little, so that a worker can be killed while it grades.
SLOW = {k: "import time\ntime.sleep(1.5)\n" + v for k, v in ANSWERS["correct"].items()}


def make_class(root: Path, course: Path, count: int) -> None:
    import nbformat

    release_nb = course / "exercises" / MODULE / f"{MODULE}.ipynb"
    for index in range(count):
        target = root / f"s{index:03d}" / MODULE / f"{MODULE}.ipynb"
        target.parent.mkdir(parents=True)
        kind = ("slow", "partial", "invalid")[index % 3]
        if kind == "invalid":
            target.write_text("{not json", encoding="utf-8")
        else:
            nbformat.write(answered(release_nb, SLOW if kind == "slow" else ANSWERS["partial"]), target)
    if count > 1:
        (root / "s001" / MODULE / "notes.txt").write_text("beside the notebook", encoding="utf-8")


class Cluster:
    def __init__(self, folder: Path, course: Path) -> None:
        self.folder, self.course = folder, course
        self.file = folder / "scheduler.json"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        args = [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard"]
        self._start("scheduler", [*args, "--scheduler-file", str(self.file)])

    def _start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> None:
        log = (self.folder / f"{name}.log").open("wb")
        self.procs[name] = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env or dict(os.environ),
            cwd=self.folder,
            start_new_session=True,
        )

    def address(self) -> str:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError, KeyError):
                return str(json.loads(self.file.read_text())["address"])
            time.sleep(0.2)
        raise AssertionError(f"the scheduler did not start: {(self.folder / 'scheduler.log').read_text()[-2000:]}")

    def add_worker(self, name: str, course: Path | None = None) -> None:
        home = self.folder / name
        home.mkdir()
        env = dict(os.environ)
        env.update(MLCRAFT_COURSE_ROOT=str(course or self.course), MLCRAFT_GRADING_DIR=str(home / "grading"))
        args = [
            str(DASK),
            "worker",
            self.address(),
            "--nworkers",
            "1",
            "--nthreads",
            "1",
            "--no-dashboard",
            "--name",
            name,
            "--local-directory",
            str(home / "dask"),
        ]
        self._start(name, args, env)

    def wait_workers(self, count: int) -> None:
        from distributed import Client

        with Client(self.address(), timeout=60, set_as_default=False) as client:  # type: ignore[no-untyped-call]
            client.wait_for_workers(count, timeout=180)

    def kill(self, name: str) -> None:
        proc = self.procs[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def close(self) -> None:
        for name in list(self.procs):
            self.kill(name)


@pytest.fixture
def cluster(tiny_course: Path, tmp_path: Path) -> Iterator[Cluster]:
    (tmp_path / "cluster").mkdir()
    one = Cluster(tmp_path / "cluster", tiny_course)
    try:
        yield one
    finally:
        one.close()


def _comparable(results: list[SubmissionResult]) -> dict[str, tuple[object, ...]]:
    return {r.student: (r.status, r.score, r.max_score, r.cells, r.flags, r.detail, bool(r.feedback)) for r in results}


def test_a_cluster_grades_like_a_local_run_and_survives_a_killed_worker(
    cluster: Cluster, tiny_course: Path, tmp_path: Path
) -> None:
    classroom = tmp_path / "class"
    make_class(classroom, tiny_course, 6)
    local = grade_classroom(classroom, tiny_course, tmp_path / "local", settings=SETTINGS)
    assert {r.student: r.status for r in local}["s001"] is Status.GRADED

    cluster.add_worker("alpha")
    cluster.add_worker("beta")
    cluster.wait_workers(2)
    out = tmp_path / "remote"
    killed: list[str] = []

    def on_result(result: SubmissionResult) -> None:
        if result.status is not Status.INVALID and not killed:
            cluster.kill("alpha")  # mid-run: its tasks go to beta
            killed.append("alpha")

    remote = grade_classroom(
        classroom, tiny_course, out, settings=SETTINGS, scheduler=cluster.address(), on_result=on_result
    )
    assert killed == ["alpha"]
    assert _comparable(remote) == _comparable(local)
    assert (out / "grades.csv").read_text() == (tmp_path / "local" / "grades.csv").read_text().replace(
        str(tmp_path / "local"), str(out)
    )
    for result in remote:
        if result.feedback:
            assert Path(result.feedback).is_file() and Path(result.feedback).is_relative_to(out)
    # Resumable as a local run: nothing is sent again.
    before = {p.name: p.stat().st_mtime_ns for p in (out / "results" / MODULE).glob("*.json")}
    again = grade_classroom(classroom, tiny_course, out, settings=SETTINGS, scheduler=cluster.address())
    assert _comparable(again) == _comparable(remote)
    assert {p.name: p.stat().st_mtime_ns for p in (out / "results" / MODULE).glob("*.json")} == before


def test_a_worker_with_another_course_version_refuses(cluster: Cluster, tiny_course: Path, tmp_path: Path) -> None:
    other = tmp_path / "other-course"
    shutil.copytree(tiny_course, other)
    source = other / "solutions" / MODULE / f"{MODULE}.ipynb"
    notebook = json.loads(source.read_text())
    notebook["cells"].append({"cell_type": "markdown", "metadata": {}, "source": "a later edit"})
    source.write_text(json.dumps(notebook))
    cluster.add_worker("stale", course=other)
    cluster.wait_workers(1)
    classroom = tmp_path / "class"
    make_class(classroom, tiny_course, 2)
    results = grade_classroom(classroom, tiny_course, tmp_path / "out", settings=SETTINGS, scheduler=cluster.address())
    status = {r.student: r for r in results}
    assert status["s000"].status is Status.ERROR
    assert "another version" in status["s000"].detail and MODULE in status["s000"].detail


def test_an_unreachable_scheduler_is_a_clear_error(
    tiny_course: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlcraft.classroom.grading import cluster as cluster_module

    monkeypatch.setattr(cluster_module, "_CONNECT_TIMEOUT_S", 3)
    classroom = tmp_path / "class"
    make_class(classroom, tiny_course, 1)
    with pytest.raises(OSError, match=r"cannot reach the Dask scheduler at tcp://127\.0\.0\.1:9"):
        grade_classroom(classroom, tiny_course, tmp_path / "out", settings=SETTINGS, scheduler="tcp://127.0.0.1:9")
