"""The kernel sandbox (bubblewrap), the privilege and resource-limit shim, and the scoring rule.

The sandbox tests run the shim and a probe script inside the very sandbox a grading kernel
gets (``sandbox.sandboxed``), as whatever user runs the tests: as root (CI, containers) the
kernel must still end up unprivileged.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from mlcraft.classroom.grading.execute import honest_grade
from mlcraft.classroom.grading.limits import LimitSettings, shim_command
from mlcraft.classroom.grading.sandbox import (
    SANDBOX_UID,
    SandboxLayout,
    bwrap_command,
    import_roots,
    sandbox_status,
    sandboxed,
)

BWRAP = sandbox_status("auto")[0]
needs_bwrap = pytest.mark.skipif(not BWRAP, reason=f"no sandbox here: {sandbox_status('auto')[1]}")
SCRATCH = 16 * 2**20


def _layout(tmp_path: Path) -> SandboxLayout:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    data = tmp_path / "data.csv"
    data.write_text("1,2\n", encoding="utf-8")
    data.chmod(0o644)
    return SandboxLayout(private=private, scratch_bytes=SCRATCH, data_files=(data,))


def test_bwrap_command_is_an_allow_list(tmp_path: Path) -> None:
    args = bwrap_command("/usr/bin/bwrap", _layout(tmp_path), userns_fd=None)
    assert args[0] == "/usr/bin/bwrap" and args[-1] == "--"
    pairs = list(itertools.pairwise(args))
    assert ("--ro-bind", "/") not in pairs, "the host's root is never shown whole"
    assert ("--remount-ro", "/") in pairs and ("--remount-ro", "/dev") in pairs
    for flag in ("--unshare-user", "--disable-userns", "--unshare-net", "--unshare-pid", "--die-with-parent"):
        assert flag in args
    assert ("--chdir", "/tmp/work") in pairs and "--clearenv" in args
    # Every tmpfs is sized: --size comes right before each --tmpfs (after --perms).
    for index, flag in enumerate(args):
        if flag == "--tmpfs":
            assert "--size" in args[index - 4 : index], args[index - 4 : index + 2]
    # Only the Python environment, the system and the data files are bound from the host.
    bound = {b for flag, b in pairs if flag in ("--ro-bind", "--bind", "--ro-bind-try")}
    allowed = {str(r) for r in import_roots()} | {"/usr", str(tmp_path / "data.csv")}
    allowed |= {str(tmp_path / "private" / n) for n in ("passwd", "group")}
    assert {b for b in bound if not b.startswith("/etc/")} <= allowed
    assert not any(flag == "--bind" for flag, _ in pairs), "nothing of the host is writable"
    names = {args[i + 1] for i, flag in enumerate(args) if flag == "--setenv"}
    assert {"PATH", "HOME", "TMPDIR"} <= names and not {n for n in names if "TOKEN" in n or "SECRET" in n}


def test_bwrap_command_uses_a_given_user_namespace(tmp_path: Path) -> None:
    args = bwrap_command("/usr/bin/bwrap", _layout(tmp_path), userns_fd=7)
    assert ("--userns", "7") in list(itertools.pairwise(args))
    assert "--unshare-user" not in args


def test_bwrap_command_refuses_an_environment_inside_a_secret_folder(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="overlaps"):
        bwrap_command("/usr/bin/bwrap", _layout(tmp_path), userns_fd=None, secret=(import_roots()[0],))


def test_sandbox_status_off_and_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    assert sandbox_status("off") == ("", "sandbox turned off (--sandbox off)")
    monkeypatch.setattr(shutil, "which", lambda name: None)  # the same shutil module the sandbox code uses
    if sys.platform.startswith("linux"):
        executable, reason = sandbox_status("auto")
        assert executable == "" and "apt-get install bubblewrap" in reason


_PROBE = r"""
import json, os, socket, subprocess, sys
out = {"uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(), "pid": os.getpid(), "cwd": os.getcwd()}
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
out["cap_eff"] = status["CapEff"].strip()
out["cap_bnd"] = status["CapBnd"].strip()
out["no_new_privs"] = status["NoNewPrivs"].strip()
out["root"] = sorted(os.listdir("/"))
out["fds"] = sorted(int(fd) for fd in os.listdir("/proc/self/fd"))
out["nice"] = os.nice(0)
out["data"] = open("data.csv").read()
def attempt(fn):
    try:
        fn()
        return "ok"
    except OSError as err:
        return err.strerror or type(err).__name__
out["write_root"] = attempt(lambda: open("/probe", "w").write("x"))
out["write_usr"] = attempt(lambda: open(sys.prefix + "/probe", "w").write("x"))
out["write_dev"] = attempt(lambda: open("/dev/probe", "w").write("x"))
out["write_tmp"] = attempt(lambda: open("/tmp/probe", "w").write("x"))
out["write_shm"] = attempt(lambda: open("/dev/shm/probe", "w").write("x"))
def fill(path):
    with open(path, "wb") as handle:
        for _ in range(64):
            handle.write(b"\0" * 2**20)
            handle.flush()
out["fill_tmp"] = attempt(lambda: fill("/tmp/fill"))
os.remove("/tmp/fill")
out["fill_shm"] = attempt(lambda: fill("/dev/shm/fill"))
os.remove("/dev/shm/fill")
try:
    out["environ_1"] = len(open("/proc/1/environ", "rb").read())  # the sandbox's first process
except OSError:
    out["environ_1"] = -1
out["env"] = sorted(os.environ)
out["network"] = attempt(lambda: socket.create_connection(("127.0.0.1", 22), timeout=2))
def run(*cmd):
    proc = subprocess.run(list(cmd), capture_output=True, text=True)
    return proc.returncode
out["umount_tmp"] = run("umount", "/tmp")
out["remount_root"] = run("mount", "-o", "remount,rw", "/")
out["unshare_user"] = run("unshare", "--user", "--map-root-user", "true")
children = []
try:
    for _ in range(200):
        children.append(subprocess.Popen(["sleep", "30"]))
    out["processes"] = "all 200 started"
except OSError as err:
    out["processes"] = err.strerror
for child in children:
    child.kill()
print(json.dumps(out))
"""


@needs_bwrap
def test_code_in_the_sandbox_is_unprivileged_isolated_and_limited(tmp_path: Path) -> None:
    limits = LimitSettings(memory_bytes=4 * 2**30, file_size_bytes=64 * 2**20, processes=48)
    with sandboxed(BWRAP, _layout(tmp_path), limits, [sys.executable, "-c", _PROBE]) as (argv, kwargs):
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False, **kwargs)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    if os.geteuid() == 0:
        assert seen["uid"] == SANDBOX_UID and seen["gid"] != 0, "grading as root, the kernel must not be root"
    assert seen["uid"] != 0 and seen["groups"] in ([], [seen["gid"]])
    assert int(seen["cap_eff"], 16) == 0 and seen["no_new_privs"] == "1"
    assert seen["pid"] < 10, "its own PID namespace"
    assert seen["fds"][:3] == [0, 1, 2] and len(seen["fds"]) <= 4, f"descriptors passed into the sandbox: {seen['fds']}"
    assert seen["nice"] >= 5, "kernels run below the grader's priority"
    assert seen["cwd"] == "/tmp/work" and seen["data"] == "1,2\n"
    # The allow-list: only the system, /proc, /dev, the scratch and the Python environment's roots.
    system = {"usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc", "dev", "proc", "tmp"}
    assert set(seen["root"]) <= system | {p.parts[1] for p in import_roots()}, seen["root"]
    assert seen["write_root"] != "ok" and seen["write_usr"] != "ok" and seen["write_dev"] != "ok"
    assert seen["write_tmp"] == "ok" and seen["write_shm"] == "ok"
    # One sized tmpfs: /tmp and /dev/shm share the scratch budget (16 MiB here).
    assert seen["fill_tmp"] == "No space left on device" and seen["fill_shm"] == "No space left on device"
    assert seen["environ_1"] <= 0, "the first process's environment is unreadable or empty"
    assert not {k for k in seen["env"] if any(w in k for w in ("TOKEN", "SECRET", "KEY", "PASSWORD"))}
    assert seen["network"] != "ok"
    assert seen["umount_tmp"] != 0 and seen["remount_root"] != 0 and seen["unshare_user"] != 0
    assert seen["processes"] == "Resource temporarily unavailable", "RLIMIT_NPROC must stop a process flood"


@needs_bwrap
def test_the_sandbox_does_not_see_the_graders_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLCRAFT_TEST_SECRET_TOKEN", "s3cr3t")
    code = "import os; print(sorted(os.environ)); print(open('/proc/1/environ','rb').read() if os.access('/proc/1/environ', os.R_OK) else b'')"
    limits = LimitSettings(memory_bytes=4 * 2**30, file_size_bytes=2**20)
    with sandboxed(BWRAP, _layout(tmp_path), limits, [sys.executable, "-c", code]) as (argv, kwargs):
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False, **kwargs)
    assert proc.returncode == 0, proc.stderr
    assert "s3cr3t" not in proc.stdout and "MLCRAFT_TEST_SECRET_TOKEN" not in proc.stdout


def test_limits_shim_sets_the_limits_and_runs_the_command() -> None:
    code = (
        "import resource as r; print(*(r.getrlimit(getattr(r, n))[0] for n in "
        "('RLIMIT_AS', 'RLIMIT_CORE', 'RLIMIT_FSIZE', 'RLIMIT_NOFILE')))"
    )
    limits = LimitSettings(memory_bytes=3 * 2**30, file_size_bytes=2**20, files=512)
    proc = subprocess.run(
        [*shim_command(limits), sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(3 * 2**30), "0", str(2**20), "512"]


def test_limits_shim_rejects_bad_usage() -> None:
    for argv in (["--memory", "10"], ["--memory", "ten", "--", "true"], ["--bogus", "1", "--", "true"]):
        proc = subprocess.run(
            [sys.executable, "-m", "mlcraft.classroom.grading.limits", *argv],
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 2, argv


def _test_cell(outputs: list[dict[str, object]]) -> nbformat.NotebookNode:
    cell: nbformat.NotebookNode = nbformat.v4.new_code_cell("assert f() == 1")
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


@needs_bwrap
def test_an_environment_under_tmp_stays_visible(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Python environment in /tmp (a CI runner's checkout) must not be hidden by the scratch
    tmpfs mounted at /tmp; it stays read-only."""
    from mlcraft.classroom.grading import sandbox

    env_dir = tmp_path / "venv-under-tmp"
    env_dir.mkdir()
    (env_dir / "marker.txt").write_text("visible", encoding="utf-8")
    assert str(env_dir).startswith("/tmp/"), "this test needs pytest's folder under /tmp"
    roots = sandbox.import_roots()
    monkeypatch.setattr(sandbox, "import_roots", lambda: (*roots, env_dir))
    probe = (
        "import os, sys; path = sys.argv[1]; print(open(path + '/marker.txt').read());"
        "print(os.access(path, os.W_OK)); print(sorted(os.listdir('/tmp')))"
    )
    limits = LimitSettings(memory_bytes=4 * 2**30, file_size_bytes=64 * 2**20, processes=48)
    with sandboxed(BWRAP, _layout(tmp_path), limits, [sys.executable, "-c", probe, str(env_dir)]) as (argv, kwargs):
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False, **kwargs)
    assert proc.returncode == 0, proc.stderr
    marker, writable, listing = proc.stdout.strip().splitlines()[-3:]
    assert marker == "visible" and writable == "False"
    assert "work" in listing, "the kernel's working folder is still in the scratch"
