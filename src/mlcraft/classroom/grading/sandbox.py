"""The grading kernel's sandbox: only the student's code runs inside it.

The grader (nbgrader, the tests, the gradebook) stays outside; only the kernel, which runs the
student's code, is started inside a `bubblewrap <https://github.com/containers/bubblewrap>`_
(0.8 or newer) sandbox built from an allow-list:

- a new, empty root filesystem holding only the system (``/usr``, the library links, a few
  files of ``/etc`` and a generated ``passwd``), the Python environment (read-only) and one
  writable, size-capped ``tmpfs`` at ``/tmp`` that holds the kernel's working folder, its
  ``/dev/shm`` and its sockets: the total the kernel can write is ``scratch_bytes``. The root
  and ``/dev`` are read-only. Course sources, hidden tests, gradebooks, the grading output,
  other submissions and ``$HOME`` are not there at all;
- its own user, PID, IPC, UTS, cgroup and network namespaces: no network (not even loopback);
  every process the student starts (``setsid`` daemons included) dies with the kernel;
- no privilege, even when grading runs as root: the kernel runs as an unprivileged uid
  (``SANDBOX_UID``, mapped to the same unprivileged uid of the host), with no capability and
  ``no_new_privs``; it can create no user namespace, so mounts cannot be undone or redone;
- a clean environment for the whole sandbox (bubblewrap itself included): no token or
  credential of the grader's environment reaches it;
- the limits of :mod:`mlcraft.classroom.grading.limits` (memory, file size, processes, open files).

The kernel binds its sockets (``transport = "ipc"``) inside its own ``/tmp``; the grader
reaches them through ``/proc/<sandbox pid>/root``. Interrupts are sent as messages, since
signals cannot cross into the sandbox.

Where bubblewrap is missing (macOS, containers without user namespaces), the kernel runs
without a sandbox and :func:`sandbox_status` says exactly which protections are missing. The
resource limits apply either way.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq
from jupyter_client.manager import AsyncKernelManager
from traitlets import Integer, List, Unicode

from mlcraft.classroom.grading import protocol
from mlcraft.classroom.grading.limits import LimitSettings, shim_command

__all__ = [
    "MISSING_PROTECTIONS",
    "SANDBOX_UID",
    "SandboxKernelManager",
    "SandboxLayout",
    "bwrap_command",
    "import_roots",
    "make_user_namespace",
    "sandbox_status",
    "sandboxed",
]

#: What a submission can do when no sandbox is available (printed once per grading run).
MISSING_PROTECTIONS = (
    "student code can read the instructor's sources and hidden tests, the grading secret, the "
    "gradebook and other students' submissions, can write where the grader can, can use the network, and can leave "
    "processes running in a new session"
)

#: The unprivileged user the kernel runs as when grading runs as root (``nobody``).
SANDBOX_UID = 65534
SANDBOX_GID = 65534

# Environment the kernel keeps; everything else (tokens, credentials) is dropped.
_KEEP_ENV = ("LANG", "LC_ALL", "TZ", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "PYTHONHASHSEED")
# Files of /etc a Python process needs (dynamic loader, time zone, MIME types, TLS roots).
_ETC = (
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "timezone",
    "mime.types",
    "nsswitch.conf",
    "os-release",
    "ssl",
    "ca-certificates",
    "alternatives",
)
_DEVICES = ("null", "zero", "full", "random", "urandom")
_SHM = f"{protocol.SANDBOX_SCRATCH}/.shm"


@functools.cache
def _probe(executable: str, as_root: bool) -> str:
    """'' when ``executable`` can build the sandbox here, else the reason it cannot."""
    with tempfile.TemporaryDirectory(prefix="mlcraft-probe-") as folder:
        layout = SandboxLayout(private=Path(folder), scratch_bytes=4 * 2**20)
        try:
            prefix, fds = _launch_prefix(executable, layout, as_root)
        except OSError as err:
            return f"cannot create a user namespace here ({err})"
        try:
            proc = subprocess.run(
                [*prefix, "/usr/bin/true"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
                env={},
                pass_fds=fds,
                **_drop_groups(as_root),
            )
        except (OSError, subprocess.TimeoutExpired) as err:
            return f"{executable} failed to start: {err}"
        finally:
            for fd in fds:
                os.close(fd)
    if proc.returncode != 0:
        return f"{executable} cannot build the sandbox here: {proc.stderr.strip() or proc.returncode}"
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
    reason = _probe(executable, os.geteuid() == 0)
    return ("", reason) if reason else (executable, "")


def make_user_namespace(uid: int = SANDBOX_UID, gid: int = SANDBOX_GID) -> int:
    """A file descriptor of a new user namespace (grading as root only) that maps ``0 -> 0``
    (bubblewrap sets up the sandbox as that root) and ``uid -> uid``, ``gid -> gid`` (the kernel
    runs as those), and in which no further user namespace can be created.

    Raises:
        OSError: when user namespaces cannot be created here.
    """
    helper = subprocess.Popen(
        [sys.executable, "-m", "mlcraft.classroom.grading.limits", "userns"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={},
    )
    assert helper.stdin is not None and helper.stdout is not None
    try:
        line = helper.stdout.readline().strip()
        if line != "ready":
            raise OSError(f"user namespace helper: {line or 'no answer'}")
        proc = Path(f"/proc/{helper.pid}")
        (proc / "uid_map").write_text(f"0 0 1\n{uid} {uid} 1\n")
        (proc / "setgroups").write_text("deny")
        (proc / "gid_map").write_text(f"0 0 1\n{gid} {gid} 1\n")
        helper.stdin.write("mapped\n")
        helper.stdin.flush()
        line = helper.stdout.readline().strip()
        if line != "done":
            raise OSError(f"user namespace helper: {line or 'no answer'}")
        return os.open(proc / "ns" / "user", os.O_RDONLY)
    finally:
        helper.stdin.close()
        helper.wait(timeout=10)


@functools.cache
def import_roots() -> tuple[Path, ...]:
    """Folders the kernel must read: the Python installation and its import path, as a fresh
    interpreter of this environment sees them (never the working folder), outermost only."""
    proc = subprocess.run(
        [sys.executable, "-c", "import json, sys; print(json.dumps([sys.prefix, sys.base_prefix, *sys.path]))"],
        capture_output=True,
        text=True,
        cwd="/",
        check=True,
    )
    found = {Path(p).resolve() for p in json.loads(proc.stdout) if p and Path(p).is_dir()}
    found.add(Path(sys.executable).resolve().parent.parent)
    found = {p for p in found if p != Path("/") and not _inside(p, Path("/usr"))}
    return tuple(sorted(p for p in found if not any(o != p and _inside(p, o) for o in found)))


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _gpu_devices() -> list[str]:
    return sorted(str(p) for p in Path("/dev").glob("nvidia*") if not p.is_dir())


@dataclass
class SandboxLayout:
    """Host-side pieces of one sandbox: a private folder (``0700``, never visible to the kernel
    except for the files bound from it), the scratch size and the files an assignment ships."""

    private: Path
    scratch_bytes: int
    data_files: tuple[Path, ...] = ()
    connection_file: Path | None = None


def _parents(path: Path) -> list[str]:
    return [str(p) for p in reversed(path.parents) if p != Path("/")]


def bwrap_command(
    executable: str,
    layout: SandboxLayout,
    *,
    userns_fd: int | None,
    info_fd: int | None = None,
    secret: tuple[Path, ...] = (),
) -> list[str]:
    """The ``bwrap`` argv prefix (up to ``--``) for a kernel laid out as ``layout``.

    ``userns_fd``: a namespace from :func:`make_user_namespace` (grading as root), or ``None``
    (bubblewrap makes its own, unprivileged one). ``secret`` folders must not overlap anything
    the sandbox shows.

    Raises:
        ValueError: when a folder of the Python environment overlaps a secret folder.
    """
    args = [executable]
    if userns_fd is not None:
        args += ["--userns", str(userns_fd)]
    else:
        args += ["--unshare-user", "--disable-userns"]
    args += ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    args += ["--die-with-parent", "--new-session"]
    if info_fd is not None:
        args += ["--info-fd", str(info_fd)]
    # The system, read-only; the top-level links of a merged /usr are mirrored.
    args += ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        top = Path("/") / name
        if top.is_symlink():
            args += ["--symlink", os.readlink(top), str(top)]
        elif top.is_dir():
            args += ["--ro-bind", str(top), str(top)]
    for name in _ETC:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    for name in ("passwd", "group"):
        args += ["--ro-bind", str(layout.private / name), f"/etc/{name}"]
    # The Python environment, read-only, each root at its own path (readable parents). A root
    # under the scratch folder (a CI runner's environment in /tmp) is bound after the scratch
    # tmpfs is mounted, which would otherwise hide it.
    scratch = protocol.SANDBOX_SCRATCH
    roots = import_roots()
    for root in roots:
        if any(_inside(root, s) or _inside(s, root) for s in secret):
            raise ValueError(f"the Python environment folder {root} overlaps {secret}; install it elsewhere")
        if _inside(Path(protocol.KERNEL_WORKDIR), root) or _inside(root, Path(protocol.KERNEL_WORKDIR)):
            raise ValueError(f"the Python environment folder {root} overlaps the kernel's working folder")
    early = [r for r in roots if not _inside(r, Path(scratch))]
    late = [r for r in roots if _inside(r, Path(scratch))]
    made: set[str] = {"/usr", "/etc"}

    def bind(root: Path) -> list[str]:
        out = []
        for parent in _parents(root):
            if parent not in made:
                made.add(parent)
                out += ["--perms", "0755", "--dir", parent]
        return [*out, "--ro-bind", str(root), str(root)]

    for root in early:
        args += bind(root)
    args += ["--proc", "/proc"]
    # One writable tmpfs, of scratch_bytes: working folder, shared memory and sockets.
    args += ["--perms", "01777", "--size", str(layout.scratch_bytes), "--tmpfs", scratch]
    made = {p for p in made if not _inside(Path(p), Path(scratch))} | {scratch}
    for folder in (protocol.KERNEL_WORKDIR, _SHM, str(Path(protocol.KERNEL_IP).parent)):
        args += ["--perms", "01777", "--dir", folder]
    for root in late:
        args += bind(root)
    if layout.connection_file is not None:
        args += ["--ro-bind", str(layout.connection_file), protocol.KERNEL_CONNECTION_FILE]
    for data in layout.data_files:
        args += ["--ro-bind", str(data), f"{protocol.KERNEL_WORKDIR}/{data.name}"]
    # A minimal, read-only /dev whose shared memory lives in the scratch tmpfs.
    args += ["--perms", "0755", "--size", str(2**16), "--tmpfs", "/dev"]
    for name in _DEVICES:
        args += ["--dev-bind", f"/dev/{name}", f"/dev/{name}"]
    for device in _gpu_devices():
        args += ["--dev-bind", device, device]
    if _gpu_devices():
        args += ["--ro-bind-try", "/sys", "/sys"]
    for target, link in (("/proc/self/fd", "/dev/fd"), (_SHM, "/dev/shm")):
        args += ["--symlink", target, link]
    for index, name in enumerate(("stdin", "stdout", "stderr")):
        args += ["--symlink", f"/proc/self/fd/{index}", f"/dev/{name}"]
    args += ["--remount-ro", "/dev", "--remount-ro", "/"]
    args += ["--chdir", protocol.KERNEL_WORKDIR, "--clearenv"]
    env = {k: os.environ[k] for k in _KEEP_ENV if k in os.environ}
    env |= {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": scratch, "TMPDIR": scratch}
    env |= {"IPYTHONDIR": f"{scratch}/.ipython", "MPLCONFIGDIR": f"{scratch}/.mpl", "PYTHONDONTWRITEBYTECODE": "1"}
    env |= {"JUPYTER_RUNTIME_DIR": f"{scratch}/.jupyter", "MPLBACKEND": "Agg"}
    for key, value in sorted(env.items()):
        args += ["--setenv", key, value]
    return [*args, "--"]


def _write_identity(private: Path, uid: int, gid: int) -> None:
    """The passwd and group files the sandbox sees: root and the kernel's user, nothing else."""
    (private / "passwd").write_text(
        f"root:x:0:0:root:/root:/usr/sbin/nologin\nstudent:x:{uid}:{gid}:student:{protocol.SANDBOX_SCRATCH}:"
        "/usr/sbin/nologin\n",
        encoding="utf-8",
    )
    (private / "group").write_text(f"root:x:0:\nstudent:x:{gid}:\n", encoding="utf-8")
    for name in ("passwd", "group"):
        (private / name).chmod(0o644)


def _launch_prefix(executable: str, layout: SandboxLayout, as_root: bool) -> tuple[list[str], list[int]]:
    """The bwrap prefix and the file descriptors it needs (closed by the caller after launch)."""
    uid, gid = (SANDBOX_UID, SANDBOX_GID) if as_root else (os.getuid(), os.getgid())
    _write_identity(layout.private, uid, gid)
    fds: list[int] = []
    userns = make_user_namespace(uid, gid) if as_root else None
    if userns is not None:
        fds.append(userns)
    return bwrap_command(executable, layout, userns_fd=userns), fds


@contextmanager
def sandboxed(
    executable: str, layout: SandboxLayout, limits: LimitSettings, command: list[str]
) -> Iterator[tuple[list[str], dict[str, Any]]]:
    """``(argv, Popen keyword arguments)`` that run ``command`` in the sandbox under ``limits``,
    exactly as a grading kernel runs (user namespace, uid, clean environment). The file
    descriptors the launch needs are closed when the block ends.
    """
    as_root = os.geteuid() == 0
    if as_root:
        limits.uid, limits.gid = SANDBOX_UID, SANDBOX_GID
    prefix, fds = _launch_prefix(executable, layout, as_root)
    try:
        kwargs: dict[str, Any] = {"pass_fds": tuple(fds), "env": {}, **_drop_groups(as_root)}
        yield [*prefix, *shim_command(limits), *command], kwargs
    finally:
        for fd in fds:
            os.close(fd)


def _drop_groups(as_root: bool) -> dict[str, Any]:
    """Popen arguments that drop the grader's supplementary groups before bwrap starts."""
    return {"extra_groups": []} if as_root else {}


class SandboxKernelManager(AsyncKernelManager):
    """A kernel manager that starts the grading kernel (:mod:`mlcraft.classroom.grading.kernel`) under the
    limits shim and, when ``bwrap`` is set, inside the sandbox. The notebook's kernelspec is
    ignored: a student cannot pick another kernel or interpreter.
    """

    bwrap = Unicode("", help="bubblewrap executable; empty: no sandbox").tag(config=True)
    secret = List(Unicode(), help="folders that must never overlap what the sandbox shows").tag(config=True)
    data_folder = Unicode("", help="folder whose non-notebook files the kernel sees in its working folder").tag(
        config=True
    )
    scratch_bytes = Integer(256 * 2**20, help="size of the kernel's only writable tmpfs").tag(config=True)
    memory_bytes = Integer(8 * 2**30, help="address-space limit of the kernel").tag(config=True)
    file_size_bytes = Integer(256 * 2**20, help="largest file the kernel may write").tag(config=True)
    processes = Integer(256, help="processes and threads the kernel's user may have (sandbox only)").tag(config=True)
    max_message_bytes = Integer(
        128 * 2**20, help="largest message part the grader accepts from the kernel; a bigger one drops the connection"
    ).tag(config=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._private = Path(tempfile.mkdtemp(prefix="mlcraft-kernel-"))
        self.transport = "ipc"
        # Sandboxed: the kernel's own /tmp (reached from here through /proc/PID/root); else private.
        self.ip = protocol.KERNEL_IP if self.bwrap else str(self._private / "kernel")
        self.connection_file = str(self._private / "kernel.json")
        self._fds: list[int] = []

    @property
    def kernel_spec(self) -> Any:
        spec = super().kernel_spec
        if spec is not None:
            spec.interrupt_mode = "message"  # signals do not reach into the sandbox's session
        return spec

    def _limits(self) -> LimitSettings:
        as_root = bool(self.bwrap) and os.geteuid() == 0
        return LimitSettings(
            memory_bytes=self.memory_bytes,
            file_size_bytes=self.file_size_bytes,
            # Without a sandbox the count would include every process of the grader's user.
            processes=self.processes if self.bwrap else 1 << 20,
            uid=SANDBOX_UID if as_root else None,
            gid=SANDBOX_GID if as_root else None,
        )

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        connection = protocol.KERNEL_CONNECTION_FILE if self.bwrap else self.connection_file
        kernel = [sys.executable, "-m", protocol.KERNEL_MODULE, "-f", connection, *(extra_arguments or [])]
        command = [*shim_command(self._limits()), *kernel]
        if not self.bwrap:
            return command
        folder = Path(self.data_folder) if self.data_folder else None
        data = sorted(p for p in folder.iterdir() if p.suffix != ".ipynb") if folder and folder.is_dir() else []
        layout = SandboxLayout(self._private, self.scratch_bytes, tuple(data), Path(self.connection_file))
        as_root = os.geteuid() == 0
        prefix, self._fds = _launch_prefix(self.bwrap, layout, as_root)
        info = os.open(self._private / "info.json", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        self._fds.append(info)
        prefix.insert(-1, "--info-fd")
        prefix.insert(-1, str(info))
        return [*prefix, *command]

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
        Path(self.connection_file).chmod(0o644)  # read by the kernel's unprivileged user
        kw["env"] = {} if self.bwrap else _plain_env()
        kw["cwd"] = str(self._private)
        if self.bwrap:
            kw["pass_fds"] = tuple(self._fds)
            kw.update(_drop_groups(os.geteuid() == 0))
        try:
            await super()._async_launch_kernel(kernel_cmd, **kw)
        finally:
            for fd in self._fds:
                os.close(fd)
            self._fds = []
        if self.bwrap:
            self.ip = f"/proc/{self._sandbox_pid()}/root{protocol.KERNEL_IP}"

    def _sandbox_pid(self, timeout: float = 30.0) -> int:
        """The sandbox's first process, from bubblewrap's ``--info-fd`` report."""
        info = self._private / "info.json"
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                pid = json.loads(info.read_text(encoding="utf-8"))["child-pid"]
                if isinstance(pid, int) and pid > 0:
                    return pid
            except (OSError, ValueError, KeyError):
                pass
            process = getattr(self.provisioner, "process", None)
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"the sandbox failed to start (exit {process.returncode})")
            time.sleep(0.01)
        raise RuntimeError("the sandbox did not report its process within 30 s")

    def client(self, **kwargs: Any) -> Any:
        kc = super().client(**kwargs)
        # A kernel that sends a message part larger than this is disconnected, not buffered; the
        # grading process's own memory limit bounds a message of many parts.
        kc.context.setsockopt(zmq.MAXMSGSIZE, self.max_message_bytes)
        return kc

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        self.ip = protocol.KERNEL_IP if self.bwrap else self.ip
        await super()._async_cleanup_resources(restart=restart)
        if not restart:
            self.discard()

    def discard(self) -> None:
        """Remove the private folder (also when the kernel died and was never shut down)."""
        shutil.rmtree(self._private, ignore_errors=True)


def _plain_env() -> dict[str, str]:
    """Without a sandbox: the grader's environment minus anything that looks like a secret."""
    words = ("TOKEN", "SECRET", "PASSWORD", "PASSWD", "KEY", "CREDENTIAL", "AUTH")
    env = {k: v for k, v in os.environ.items() if not any(w in k.upper() for w in words)}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env
