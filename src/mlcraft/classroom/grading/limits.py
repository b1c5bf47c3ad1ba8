"""Privileges and resource limits of a grading kernel.

``python -m mlcraft.classroom.grading.limits [OPTIONS] -- COMMAND...`` is the first process inside the
sandbox (and, without a sandbox, the kernel's parent). It takes away what the student's code
must not have, then replaces itself with ``COMMAND`` (``execv``), so everything below binds the
kernel and every process it starts:

- ``--uid U --gid G``: when it starts as root of the sandbox's user namespace (grading as
  root), it empties the capability bounding set and switches to ``U:G``, which the grader maps
  to an unprivileged user of the host: the kernel has no capability, cannot mount, unmount or
  remount anything, and every file outside its scratch is read-only or invisible to it. Without
  a sandbox, or when the grader is not root, the kernel already runs as that user.
- ``--memory BYTES``: ``RLIMIT_AS``, the address space. An allocation past it fails, which
  Python raises as ``MemoryError`` in the cell that allocated; a C extension may abort instead
  (graded as a crash of that cell). PyTorch reserves about 3 GiB of address space once
  imported, so the limit must leave room above that.
- ``--file-size BYTES``: ``RLIMIT_FSIZE``, the largest file the kernel may write.
- ``--processes N``: ``RLIMIT_NPROC``, processes and threads of the kernel's user (counted in
  the sandbox's own user namespace, so each submission has its own budget).
- ``--files N``: ``RLIMIT_NOFILE``, open file descriptors.
- core dumps are disabled (``RLIMIT_CORE = 0``); on Linux, the kernel is killed when its
  parent dies (``PR_SET_PDEATHSIG``); it runs at a lower priority (``nice 5``) than the grader;
  no file descriptor beyond stdin, stdout and stderr is passed on.

``python -m mlcraft.classroom.grading.limits userns UID GID`` is the grader's helper (grading as root):
it enters a new user namespace, prints ``ready``, waits while the grader writes its uid and gid
maps (``0 -> 0`` so that bubblewrap can set up the sandbox, ``UID -> UID``), forbids any
further user namespace inside it (``user.max_user_namespaces = 0``: no way to win back
capabilities), prints ``done`` and waits for end of input.

Only the standard library is imported, so the shim costs a few milliseconds.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import sys

__all__ = ["LimitSettings", "main", "shim_command"]

_PR_SET_PDEATHSIG = 1
_PR_CAPBSET_DROP = 24
_CLONE_NEWUSER = 0x10000000
_OPTIONS = {
    "--memory": "RLIMIT_AS",
    "--file-size": "RLIMIT_FSIZE",
    "--processes": "RLIMIT_NPROC",
    "--files": "RLIMIT_NOFILE",
}


class LimitSettings:
    """The limits of one kernel (plain class: this module imports nothing heavy)."""

    def __init__(
        self,
        memory_bytes: int,
        file_size_bytes: int,
        processes: int = 256,
        files: int = 1024,
        uid: int | None = None,
        gid: int | None = None,
    ) -> None:
        self.memory_bytes = memory_bytes
        self.file_size_bytes = file_size_bytes
        self.processes = processes
        self.files = files
        self.uid = uid
        self.gid = gid


def shim_command(limits: LimitSettings, python: str | None = None) -> list[str]:
    """The argv prefix that applies ``limits`` to the command that follows it."""
    command = [python or sys.executable, "-m", "mlcraft.classroom.grading.limits"]
    command += ["--memory", str(limits.memory_bytes), "--file-size", str(limits.file_size_bytes)]
    command += ["--processes", str(limits.processes), "--files", str(limits.files)]
    if limits.uid is not None and limits.gid is not None:
        command += ["--uid", str(limits.uid), "--gid", str(limits.gid)]
    return [*command, "--"]


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _set_limit(name: str, value: int) -> None:
    import resource

    which = getattr(resource, name, None)
    if which is None:
        return
    _, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    try:
        resource.setrlimit(which, (value, value))
    except (ValueError, OSError) as err:  # macOS refuses some limits; say so, keep going
        print(f"mlcraft.classroom.grading.limits: could not set {name}: {err}", file=sys.stderr)


def _drop_to(uid: int, gid: int) -> None:
    """Empty the capability bounding set and become ``uid:gid`` (only when running as uid 0)."""
    if os.geteuid() != 0:
        return
    libc = _libc()
    for cap in range(64):
        libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0)  # EINVAL past the last capability: ignored
    with contextlib.suppress(OSError):  # a user namespace with setgroups denied: dropped before
        os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)  # clears every capability
    if os.geteuid() == 0 or os.getegid() == 0:
        raise SystemExit("mlcraft.classroom.grading.limits: could not drop root")


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        _libc().prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _userns(argv: list[str]) -> int:
    """The helper side of :func:`mlcraft.classroom.grading.sandbox.make_user_namespace`."""
    if _libc().unshare(_CLONE_NEWUSER) != 0:
        print(f"error unshare: {os.strerror(ctypes.get_errno())}", flush=True)
        return 1
    print("ready", flush=True)
    sys.stdin.readline()  # the grader has written the maps
    try:
        with open("/proc/sys/user/max_user_namespaces", "w") as handle:
            handle.write("0")
    except OSError as err:
        print(f"error sysctl: {err}", flush=True)
        return 1
    print("done", flush=True)
    sys.stdin.read()
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["userns"]:
        return _userns(argv[1:])
    if "--" not in argv:
        print(
            "usage: python -m mlcraft.classroom.grading.limits [--memory B] [--file-size B] ... -- COMMAND...",
            file=sys.stderr,
        )
        return 2
    split = argv.index("--")
    options, command = argv[:split], argv[split + 1 :]
    if not command or len(options) % 2:
        print("mlcraft.classroom.grading.limits: expected option pairs and a command", file=sys.stderr)
        return 2
    values: dict[str, int] = {}
    for flag, value in zip(options[::2], options[1::2], strict=True):
        if (flag not in _OPTIONS and flag not in ("--uid", "--gid")) or not value.isdigit():
            print(f"mlcraft.classroom.grading.limits: bad option {flag} {value}", file=sys.stderr)
            return 2
        values[flag] = int(value)
    if "--uid" in values and "--gid" in values:
        _drop_to(values["--uid"], values["--gid"])
    for flag, name in _OPTIONS.items():
        if flag in values:
            _set_limit(name, values[flag])
    _set_limit("RLIMIT_CORE", 0)
    _die_with_parent()
    # Below the grader's processes (a submission's busy loops yield to grading), and nothing
    # inherited (the launch's user-namespace and report descriptors) reaches the kernel.
    with contextlib.suppress(OSError):
        os.nice(5)
    os.closerange(3, 1 << 16)
    os.execv(command[0], command)
    return 127  # pragma: no cover (execv does not return)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
