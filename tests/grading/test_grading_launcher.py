"""The fork server that starts grading processes (``mlcraft.classroom.grading.launcher``).

Each job runs in a fresh child of a server that imported its target once: the tests check what
the child gets (its own session, working folder, no inherited pipes, a state no earlier job
touched), what comes back (exit codes, standard error), and that nothing outlives its owner: a
job over its limit loses its whole process group, a killed server takes its child along, and a
server dies with the process that started it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlcraft.classroom.grading.launcher import STDERR_FILE, ForkServer, ForkServerPool
from mlcraft.classroom.grading.process import python_env

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork server tests use /proc")

HERE = Path(__file__).resolve().parent
TARGET = "launcher_targets:run"


def _env() -> dict[str, str]:
    env = python_env()
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def _job(folder: Path, name: str, **spec: object) -> Path:
    path = folder / name / "job.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(spec), encoding="utf-8")
    return path


def _report(job: Path) -> dict[str, object]:
    return dict(json.loads(job.with_suffix(".out").read_text(encoding="utf-8")))


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _wait_gone(pid: int, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def server() -> Iterator[ForkServer]:
    one = ForkServer(TARGET, _env())
    yield one
    one.close()


def test_exit_code_and_stderr_come_back(server: ForkServer, tmp_path: Path) -> None:
    job = _job(tmp_path, "a", code=3, stderr="a line on stderr")
    outcome = server.run(job, limit=60)
    assert outcome.code == 3
    assert "a line on stderr" in outcome.stderr
    assert (job.parent / STDERR_FILE).read_text().strip() == "a line on stderr"


@pytest.mark.parametrize(("spec", "code"), [({"exit": None}, 0), ({"exit": 7}, 7), ({"exit": "text"}, 1)])
def test_sys_exit_gives_its_code(server: ForkServer, tmp_path: Path, spec: dict[str, object], code: int) -> None:
    assert server.run(_job(tmp_path, "a", **spec), limit=60).code == code


def test_an_exception_is_exit_1_with_its_traceback(server: ForkServer, tmp_path: Path) -> None:
    outcome = server.run(_job(tmp_path, "a", **{"raise": "the job broke"}), limit=60)
    assert outcome.code == 1
    assert "RuntimeError: the job broke" in outcome.stderr


def test_every_job_is_a_fresh_child_in_its_own_session(server: ForkServer, tmp_path: Path) -> None:
    seen: list[int] = []
    jobs = [_job(tmp_path, name) for name in ("a", "b", "c")]
    for job in jobs:
        assert server.run(job, limit=60, on_start=seen.append).code == 0
    reports = [_report(job) for job in jobs]
    assert [r["pid"] for r in reports] == seen and len(set(seen)) == 3
    for job, report in zip(jobs, reports, strict=True):
        assert report["jobs_seen"] == 1, "a job saw the state another job left in the server"
        assert report["ppid"] == server.pid
        assert report["pgid"] == report["pid"], "the job must lead its own process group"
        assert Path(str(report["cwd"])) == job.parent
        fds = [fd for fd in report["open_fds"] if fd > 2]  # type: ignore[attr-defined]
        assert len(fds) <= 1, f"the job inherited descriptors from the server: {fds}"  # the listing's own


def test_a_job_over_its_limit_loses_its_whole_group(server: ForkServer, tmp_path: Path) -> None:
    job = _job(tmp_path, "slow", sleep=120, spawn=True)
    start = time.monotonic()
    outcome = server.run(job, limit=2)
    assert outcome.code is None
    assert time.monotonic() - start < 30
    report = _report(job)
    for pid in (int(report["pid"]), int(report["grandchild"])):  # type: ignore[call-overload]
        assert _wait_gone(pid), f"process {pid} survived the limit"
    assert server.run(_job(tmp_path, "next", code=4), limit=60).code == 4, "the server must serve on"


def test_a_killed_server_takes_its_running_job_along(tmp_path: Path) -> None:
    server = ForkServer(TARGET, _env())
    started: list[int] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            server.run(_job(tmp_path, "slow", sleep=120), limit=300, on_start=started.append)
        except BaseException as err:
            errors.append(err)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 120
    while not started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert started, "the job never started"
    os.kill(server.pid, signal.SIGKILL)
    thread.join(60)
    assert not thread.is_alive()
    assert errors and isinstance(errors[0], ConnectionError)
    assert _wait_gone(started[0]), "the job outlived its server"
    server.close()


def test_the_pool_replaces_a_dead_server_and_runs_the_job(tmp_path: Path) -> None:
    pool = ForkServerPool(1, TARGET, _env())
    try:
        assert pool.run(_job(tmp_path, "a", code=2), limit=60).code == 2
        with pool.server() as server:
            first = server.pid
        os.kill(first, signal.SIGKILL)
        assert _wait_gone(first)
        assert pool.run(_job(tmp_path, "b", code=5), limit=60).code == 5
        with pool.server() as server:
            assert server.pid != first
    finally:
        pool.close()


def test_a_target_that_cannot_be_imported_is_a_clear_error(tmp_path: Path) -> None:
    server = ForkServer("launcher_targets_that_do_not_exist:run", _env())
    try:
        with pytest.raises(ConnectionError, match="launcher_targets_that_do_not_exist"):
            server.run(_job(tmp_path, "a"), limit=60)
    finally:
        server.close()


def test_the_server_dies_with_the_process_that_started_it(tmp_path: Path) -> None:
    owner = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(HERE)!r})
        from mlcraft.classroom.grading.launcher import ForkServer
        server = ForkServer({TARGET!r})
        server.wait_ready()
        print(server.pid, flush=True)
        time.sleep(600)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", owner], stdout=subprocess.PIPE, text=True, env=_env())
    try:
        assert proc.stdout is not None
        pid = int(proc.stdout.readline())
        assert _alive(pid)
        proc.kill()
        proc.wait()
        assert _wait_gone(pid), "the server outlived the process that started it"
    finally:
        proc.kill()
