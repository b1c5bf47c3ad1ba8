"""The grading kernel's sandbox: only the student's code runs inside it.

The instructor side (nbgrader reading the source notebook with its hidden tests, writing the
gradebook) stays outside; only the kernel, which runs the student's code, is started inside a
`bubblewrap <https://github.com/containers/bubblewrap>`_ sandbox:

- its own user, PID, IPC, UTS, cgroup and network namespaces (``--unshare-all``): no network at
  all, not even loopback; every process the student starts (``setsid`` daemons included) dies
  with the kernel, because a PID namespace ends with its first process;
- ``/`` mounted read-only, ``/tmp`` and the kernel's working folder as small private
  ``tmpfs`` scratch (size-capped, gone after grading);
- the instructor's sources, the gradebook and the grading output, the submissions folder and
  ``$HOME`` replaced by empty folders: the student's code cannot read hidden tests, solutions,
  the gradebook or other students' work. The Python environment (``sys.prefix`` and the import
  path) is mounted back read-only so the kernel can import the course packages.

The kernel talks to nbgrader over Unix sockets (``transport = "ipc"``) in a private folder
mounted into the sandbox, since the network namespace has no interfaces; interrupts are sent
as messages, since signals cannot cross into the sandbox.

Where bubblewrap is missing (macOS, containers without user namespaces), the kernel runs
without a sandbox and :func:`sandbox_status` says exactly which protections are missing.
The resource limits (:mod:`mlcraft.grading.limits`) apply either way.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from jupyter_client.manager import AsyncKernelManager
from traitlets import Bool, Integer, List, Unicode

from mlcraft.grading.limits import shim_command

__all__ = ["MISSING_PROTECTIONS", "SandboxKernelManager", "bwrap_command", "sandbox_status"]

#: What a submission can do when no sandbox is available (printed once per grading run).
MISSING_PROTECTIONS = (
    "student code can read the instructor's sources and hidden tests, the gradebook and other "
    "students' submissions, can use the network, and can leave processes running in a new session"
)

# Environment the kernel keeps; everything else (tokens, credentials) is dropped.
_KEEP_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "PYTHONHASHSEED")
_SCRATCH_DIR = "/tmp"


@functools.cache
def _bwrap_probe(executable: str) -> str:
    """'' when ``executable`` can build a sandbox here, else the reason it cannot."""
    try:
        proc = subprocess.run(
            [executable, "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "--proc", "/proc", "true"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"{executable} failed to start: {err}"
    if proc.returncode != 0:
        return f"{executable} cannot create namespaces here: {proc.stderr.strip() or proc.returncode}"
    return ""


def sandbox_status(mode: str = "auto") -> tuple[str, str]:
    """``(executable, reason)``: the bubblewrap binary to use, or ``""`` and why there is none.

    ``mode`` is ``"auto"`` (use it where it works), ``"bwrap"`` (required: the reason is an error
    to report) or ``"off"``.
    """
    if mode == "off":
        return "", "sandbox turned off (--sandbox off)"
    if not sys.platform.startswith("linux"):
        return "", f"no sandbox on {sys.platform} (bubblewrap needs Linux)"
    executable = shutil.which("bwrap")
    if executable is None:
        return "", "bubblewrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    reason = _bwrap_probe(executable)
    return ("", reason) if reason else (executable, "")


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _import_roots() -> list[Path]:
    """Folders the kernel needs to read: the Python installation and the import path."""
    roots = {Path(sys.prefix), Path(sys.base_prefix), Path(sys.executable).resolve().parent}
    roots |= {Path(p) for p in sys.path if p and Path(p).is_dir()}
    import mlcraft

    roots.add(Path(mlcraft.__file__).resolve().parent.parent)
    return sorted({r.resolve() for r in roots})


def bwrap_command(
    executable: str,
    *,
    secret: list[Path],
    hidden: list[Path],
    scratch: Path,
    ipc_dir: Path,
    data_files: list[Path],
    scratch_bytes: int,
) -> list[str]:
    """The ``bwrap`` argv prefix for a kernel whose working folder is ``scratch``.

    ``secret`` folders (instructor sources, gradebooks and grading output, submissions) and
    ``hidden`` folders (the course checkout, ``$HOME``) become empty. Import roots (the Python
    environment) inside a hidden folder are mounted back read-only, unless they overlap a
    secret folder. ``ipc_dir`` (sockets and connection file) is shared read-write;
    ``data_files`` (files the assignment ships beside the notebook) are visible read-only in the
    scratch folder, which is otherwise an empty ``tmpfs`` of ``scratch_bytes``.
    """
    secret = sorted({p.resolve() for p in secret})
    covered = sorted({p.resolve() for p in [*secret, *hidden, Path.home()]}, key=lambda p: len(p.parts))
    args = [executable, "--unshare-all", "--die-with-parent", "--new-session", "--ro-bind", "/", "/"]
    args += ["--proc", "/proc", "--dev", "/dev", "--size", str(scratch_bytes), "--tmpfs", _SCRATCH_DIR]
    for folder in covered:
        if folder.is_dir() and folder != Path("/"):
            args += ["--tmpfs", str(folder)]
    for root in _import_roots():
        masked = any(_inside(root, c) for c in [*covered, Path(_SCRATCH_DIR)])
        if masked and not any(_inside(root, s) or _inside(s, root) for s in secret):
            args += ["--ro-bind", str(root), str(root)]
    args += ["--size", str(scratch_bytes), "--tmpfs", str(scratch)]
    for data in data_files:
        args += ["--ro-bind", str(data), str(scratch / data.name)]
    args += ["--bind", str(ipc_dir), str(ipc_dir), "--chdir", str(scratch), "--clearenv"]
    env = {k: os.environ[k] for k in _KEEP_ENV if k in os.environ}
    env |= {"HOME": _SCRATCH_DIR, "IPYTHONDIR": f"{_SCRATCH_DIR}/.ipython", "MPLCONFIGDIR": f"{_SCRATCH_DIR}/.mpl"}
    env |= {"JUPYTER_RUNTIME_DIR": str(ipc_dir), "PYTHONDONTWRITEBYTECODE": "1"}
    for key, value in sorted(env.items()):
        args += ["--setenv", key, value]
    return [*args, "--"]


class SandboxKernelManager(AsyncKernelManager):
    """A kernel manager that starts ``python -m ipykernel_launcher`` under the limits shim and,
    when ``bwrap`` is set, inside the sandbox. The notebook's kernelspec is ignored: a student
    cannot pick another kernel or interpreter.
    """

    bwrap = Unicode("", help="bubblewrap executable; empty: no sandbox").tag(config=True)
    secret = List(Unicode(), help="folders never visible to the kernel (sources, gradebooks, submissions)").tag(
        config=True
    )
    hidden = List(Unicode(), help="folders hidden except for the Python environment inside them").tag(config=True)
    scratch = Unicode("", help="the kernel's working folder (set by the executor)").tag(config=True)
    scratch_bytes = Integer(256 * 2**20, help="size of each private tmpfs").tag(config=True)
    memory_bytes = Integer(8 * 2**30, help="address-space limit of the kernel").tag(config=True)
    file_size_bytes = Integer(256 * 2**20, help="largest file the kernel may write").tag(config=True)
    guard = Bool(True, help="install mlcraft.testing.guard at kernel start").tag(config=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Unix sockets: they work across the network namespace; short paths (108-byte limit).
        self._ipc_dir = Path(tempfile.mkdtemp(prefix="mlk-", dir="/tmp" if os.path.isdir("/tmp") else None))
        self.transport = "ipc"
        self.ip = str(self._ipc_dir / "k")
        self.connection_file = str(self._ipc_dir / "kernel.json")

    @property
    def kernel_spec(self) -> Any:
        spec = super().kernel_spec
        if spec is not None:
            spec.interrupt_mode = "message"  # signals do not reach into the sandbox's session
        return spec

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        kernel = [sys.executable, "-m", "ipykernel_launcher", "-f", self.connection_file, *(extra_arguments or [])]
        if self.guard:
            kernel.append("--IPKernelApp.exec_lines=__import__('mlcraft.testing.guard').testing.guard.install()")
        command = [*shim_command(self.memory_bytes, self.file_size_bytes), *kernel]
        if not self.bwrap:
            return command
        scratch = Path(self.scratch or os.getcwd())
        # Files (and folders) the assignment ships beside the notebook, copied there by nbgrader.
        data = sorted(p for p in scratch.iterdir() if p.suffix != ".ipynb") if scratch.is_dir() else []
        prefix = bwrap_command(
            self.bwrap,
            secret=[Path(p) for p in self.secret],
            hidden=[Path(h) for h in self.hidden],
            scratch=scratch,
            ipc_dir=self._ipc_dir,
            data_files=data,
            scratch_bytes=self.scratch_bytes,
        )
        return [*prefix, *command]

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        if not restart:
            shutil.rmtree(self._ipc_dir, ignore_errors=True)
