"""The sandbox's attacks again, graded by an unprivileged user (when the tests run as root).

``test_grading_corpus.py`` grades the whole corpus as whoever runs the tests: root in CI and in
most containers, where the sandbox must take root's power away. An instructor on a laptop
grades as an ordinary user, where bubblewrap builds the sandbox without any privilege: the
kinds marked ``# unprivileged: yes`` (escapes, planted files, the grader's environment, a
process flood, a full scratch) and the honest ones are graded again here as ``nobody``, in a
separate process started with ``setpriv``. When the tests already run unprivileged, the main
corpus run is that test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import jupytext
import pytest

from mlcraft.classroom.grading.sandbox import sandbox_status

if TYPE_CHECKING:  # mypy knows the module by its full name
    from tests.grading.test_grading_corpus import (
        KINDS,
        MODULE,
        REPO,
        SECRET_ENV,
        SETTINGS,
        SOURCE,
        Kind,
        _Listener,
        _places,
        planted_files,
        surviving_daemons,
        write_classroom,
    )
else:  # pytest puts tests/grading on sys.path
    from test_grading_corpus import (
        KINDS,
        MODULE,
        REPO,
        SECRET_ENV,
        SETTINGS,
        SOURCE,
        Kind,
        _Listener,
        _places,
        planted_files,
        surviving_daemons,
        write_classroom,
    )

pytestmark = pytest.mark.slow

USER = 65534
CHOSEN = [k for k in KINDS if k.unprivileged or k.name in ("honest_correct", "honest_partial")]
_SETPRIV = ["setpriv", f"--reuid={USER}", f"--regid={USER}", "--clear-groups", "--inh-caps=-all", "--"]
_RUNNER = """
import sys
from pathlib import Path
from mlcraft.classroom.grading.classroom import grade_classroom
from mlcraft.classroom.grading.settings import GradeSettings
settings = GradeSettings.model_validate_json(sys.argv[4])
grade_classroom(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), ["90_corpus"], settings)
"""


def _why_not() -> str:
    """'' when this test can run here, else why not."""
    if os.geteuid() != 0:
        return "the tests already run unprivileged: test_grading_corpus.py is this test"
    if shutil.which("setpriv") is None:
        return "setpriv (util-linux) is missing"
    if not sandbox_status("bwrap" if shutil.which("bwrap") else "auto")[0]:
        return "needs the bubblewrap sandbox"
    probe = subprocess.run(
        [*_SETPRIV, sys.executable, "-c", "import mlcraft.classroom.grading.classroom"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        return (
            "the Python environment is not readable by an unprivileged user (a parent folder is private); "
            f".ci/run opens it for CI: {probe.stderr.strip()[-300:]}"
        )
    return ""


@pytest.fixture(scope="module")
def graded_unprivileged() -> Iterator[tuple[dict[str, dict[str, object]], list[str], str]]:
    reason = _why_not()
    if reason:
        pytest.skip(reason)
    from mlcraft.classroom.grading.release import release

    top = Path(tempfile.mkdtemp(prefix="mlcraft-unprivileged-", dir="/tmp"))
    top.chmod(0o755)
    course, classroom, out = top / "course", top / "class", top / "out"
    source = course / "solutions" / MODULE
    source.mkdir(parents=True)
    shutil.copy(REPO / "nbgrader_config.py", course / "nbgrader_config.py")
    shutil.copy(REPO / "solutions" / "jupytext.toml", course / "solutions" / "jupytext.toml")
    (source / f"{MODULE}.py").write_text(SOURCE, encoding="utf-8")
    jupytext.write(jupytext.reads(SOURCE, fmt="py:percent"), source / f"{MODULE}.ipynb")
    listener = _Listener()
    try:
        with pytest.MonkeyPatch.context() as monkeypatch:
            monkeypatch.setenv("MLCRAFT_GRADING_DIR", str(top / "grading"))
            release(course, [MODULE])
        write_classroom(course, classroom, out, CHOSEN, listener.port)
        subprocess.run(["chown", "-R", f"{USER}:{USER}", str(top)], check=True)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(top),
            "MLCRAFT_GRADING_DIR": str(top / "grading"),
            "OMP_NUM_THREADS": "1",
            SECRET_ENV[0]: SECRET_ENV[1],
        }
        proc = subprocess.run(
            [
                *_SETPRIV,
                sys.executable,
                "-c",
                _RUNNER,
                str(classroom),
                str(course),
                str(out),
                SETTINGS.model_dump_json(),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=1200,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        report = json.loads((out / "report.json").read_text(encoding="utf-8"))
        yield {r["student"]: r for r in report}, planted_files(_places(course, classroom, out)), surviving_daemons()
    finally:
        listener.close()
        shutil.rmtree(top, ignore_errors=True)


@pytest.mark.parametrize("kind", CHOSEN, ids=[k.name for k in CHOSEN])
def test_kind_as_an_unprivileged_grader(
    graded_unprivileged: tuple[dict[str, dict[str, object]], list[str], str], kind: Kind
) -> None:
    results, _, _ = graded_unprivileged
    result = results[kind.name]
    summary = f"{kind.description}\n{result}"
    assert result["status"] == kind.status.value, summary
    assert result["score"] == kind.score, summary
    for cell, points in kind.cells.items():
        assert result["cells"][cell][0] == points, summary  # type: ignore[index]


def test_nothing_planted_and_nothing_survives(
    graded_unprivileged: tuple[dict[str, dict[str, object]], list[str], str],
) -> None:
    _, planted, survivors = graded_unprivileged
    assert planted == [] and survivors == ""
