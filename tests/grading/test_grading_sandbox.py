"""The kernel sandbox (bubblewrap), the resource-limit shim and the honest scoring rule."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from mlcraft.grading import sandbox as sandbox_module
from mlcraft.grading.execute import honest_grade
from mlcraft.grading.limits import shim_command
from mlcraft.grading.sandbox import bwrap_command, sandbox_status

BWRAP = sandbox_status("auto")[0]
needs_bwrap = pytest.mark.skipif(not BWRAP, reason=f"no sandbox here: {sandbox_status('auto')[1]}")


def _command(tmp_path: Path, executable: str = "/usr/bin/bwrap") -> tuple[list[str], dict[str, Path]]:
    paths = {name: tmp_path / name for name in ("secret", "course", "scratch", "ipc")}
    for path in paths.values():
        path.mkdir()
    (paths["secret"] / "hidden_tests.txt").write_text("assert add(-5, 5) == 0", encoding="utf-8")
    (paths["scratch"] / "data.csv").write_text("1,2\n", encoding="utf-8")
    args = bwrap_command(
        executable,
        secret=[paths["secret"]],
        hidden=[paths["course"]],
        scratch=paths["scratch"],
        ipc_dir=paths["ipc"],
        data_files=[paths["scratch"] / "data.csv"],
        scratch_bytes=8 * 2**20,
    )
    return args, paths


def test_bwrap_command_isolates_and_hides(tmp_path: Path) -> None:
    args, paths = _command(tmp_path)
    assert args[0] == "/usr/bin/bwrap" and args[-1] == "--"
    for flag in ("--unshare-all", "--die-with-parent", "--new-session", "--clearenv"):
        assert flag in args
    assert "--share-net" not in args
    pairs = list(itertools.pairwise(args))
    assert ("--ro-bind", "/") in pairs, "the system is read-only"
    for name in ("secret", "course"):
        assert ("--tmpfs", str(paths[name])) in pairs, f"{name} must be hidden"
    assert ("--tmpfs", str(Path.home().resolve())) in pairs
    assert ("--chdir", str(paths["scratch"])) in pairs
    assert ("--bind", str(paths["ipc"])) in pairs
    # Nothing is ever bound from inside the secret folder.
    bound = [b for flag, b in pairs if flag in ("--ro-bind", "--bind")]
    assert not [b for b in bound if b.startswith(str(paths["secret"]))]


def test_sandbox_status_off_and_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    assert sandbox_status("off") == ("", "sandbox turned off (--sandbox off)")
    monkeypatch.setattr(sandbox_module.shutil, "which", lambda name: None)
    if sys.platform.startswith("linux"):
        executable, reason = sandbox_status("auto")
        assert executable == "" and "apt-get install bubblewrap" in reason


def _inside(args: list[str], code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*args, sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)


@needs_bwrap
def test_code_in_the_sandbox_cannot_read_secrets_use_the_network_or_write_the_system(tmp_path: Path) -> None:
    args, paths = _command(tmp_path, BWRAP)
    code = f"""
import os, socket, sys
assert os.listdir({str(paths["secret"])!r}) == [], "secret folder visible"
try:
    socket.create_connection(("127.0.0.1", 22), timeout=2)
    sys.exit("network reachable")
except OSError:
    pass
try:
    open("/etc/mlcraft-probe", "w").write("x")
    sys.exit("wrote /etc")
except OSError:
    pass
os.makedirs({str(tmp_path)!r}, exist_ok=True)  # /tmp is private: this lands in the sandbox's tmpfs
open({str(tmp_path / "outside.txt")!r}, "w").write("x")
open("scratch.txt", "w").write("ok")  # the scratch folder is writable
assert open("data.csv").read() == "1,2\\n"  # shipped data files are visible
import mlcraft.testing  # the Python environment is
print(os.getpid())
"""
    proc = _inside(args, code)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout.strip()) < 10, "the kernel runs in its own PID namespace"
    assert not (paths["scratch"] / "scratch.txt").exists(), "scratch is private and discarded"
    assert not (tmp_path / "outside.txt").exists(), "writes outside the scratch never reach the host"


def test_limits_shim_sets_the_limits_and_runs_the_command() -> None:
    code = (
        "import resource; print(resource.getrlimit(resource.RLIMIT_AS)[0], resource.getrlimit(resource.RLIMIT_CORE)[0])"
    )
    proc = subprocess.run(
        [*shim_command(3 * 2**30, 2**20), sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(3 * 2**30), "0"]


def test_limits_shim_rejects_bad_usage() -> None:
    for argv in (["--memory", "10"], ["--memory", "ten", "--", "true"], ["--bogus", "1", "--", "true"]):
        proc = subprocess.run(
            [sys.executable, "-m", "mlcraft.grading.limits", *argv], capture_output=True, text=True, check=False
        )
        assert proc.returncode == 2, argv


def _test_cell(outputs: list[dict[str, object]]) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell("assert f() == 1")
    cell.metadata["nbgrader"] = {"grade": True, "grade_id": "t", "points": 2, "solution": False, "locked": True}
    cell.outputs = [nbformat.from_dict(o) for o in outputs]
    return cell


@pytest.mark.parametrize(
    ("outputs", "points"),
    [
        ([], 2.0),
        ([{"output_type": "stream", "name": "stderr", "text": "DeprecationWarning: old\n"}], 2.0),
        ([{"output_type": "error", "ename": "AssertionError", "evalue": "", "traceback": []}], 0.0),
        # nbgrader would give partial credit for a displayed number before the error
        (
            [
                {
                    "output_type": "execute_result",
                    "data": {"text/plain": "100.0"},
                    "metadata": {},
                    "execution_count": 1,
                },
                {"output_type": "error", "ename": "AssertionError", "evalue": "", "traceback": []},
            ],
            0.0,
        ),
        ([{"output_type": "execute_result", "data": {"text/plain": "0.5"}, "metadata": {}, "execution_count": 1}], 2.0),
    ],
    ids=["clean", "stderr", "error", "number-then-error", "number"],
)
def test_honest_grade(outputs: list[dict[str, object]], points: float) -> None:
    assert honest_grade(_test_cell(outputs)) == (points, 2.0)


def test_honest_grade_rejects_an_ungraded_cell() -> None:
    with pytest.raises(ValueError, match="not a graded cell"):
        honest_grade(nbformat.v4.new_code_cell("x = 1"))
