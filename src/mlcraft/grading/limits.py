"""Resource limits for a grading kernel: ``python -m mlcraft.grading.limits [OPTIONS] -- COMMAND...``.

Sets POSIX resource limits (``setrlimit(2)``) on itself, then replaces itself with ``COMMAND``
(``execv``), so the limits bind the kernel and everything it starts:

- ``--memory BYTES``: ``RLIMIT_AS``, the address space. An allocation past it fails, which
  Python raises as ``MemoryError`` in the cell that allocated; a C extension may abort instead,
  which kills the kernel (graded as a crash of that cell). PyTorch reserves about 3 GiB of
  address space once imported, so the limit must leave room above that.
- ``--file-size BYTES``: ``RLIMIT_FSIZE``, the largest file the kernel may write.
- core dumps are disabled (``RLIMIT_CORE = 0``): a segfault must not fill the disk.
- on Linux, ``PR_SET_PDEATHSIG``: the kernel is killed when the grading process that started
  it dies, even when it runs without a sandbox.

Only the standard library is imported, so the shim costs a few milliseconds.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys

__all__ = ["main", "shim_command"]

_PR_SET_PDEATHSIG = 1


def shim_command(memory_bytes: int, file_size_bytes: int) -> list[str]:
    """The argv prefix that applies the limits to the command that follows it."""
    return [
        sys.executable,
        "-m",
        "mlcraft.grading.limits",
        "--memory",
        str(memory_bytes),
        "--file-size",
        str(file_size_bytes),
        "--",
    ]


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
        print(f"mlcraft.grading.limits: could not set {name}: {err}", file=sys.stderr)


def _die_with_parent() -> None:
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def main(argv: list[str]) -> int:
    if "--" not in argv:
        print("usage: python -m mlcraft.grading.limits [--memory B] [--file-size B] -- COMMAND...", file=sys.stderr)
        return 2
    split = argv.index("--")
    options, command = argv[:split], argv[split + 1 :]
    if not command or len(options) % 2:
        print("mlcraft.grading.limits: expected option pairs and a command", file=sys.stderr)
        return 2
    names = {"--memory": "RLIMIT_AS", "--file-size": "RLIMIT_FSIZE"}
    for flag, value in zip(options[::2], options[1::2], strict=True):
        if flag not in names or not value.isdigit():
            print(f"mlcraft.grading.limits: bad option {flag} {value}", file=sys.stderr)
            return 2
        _set_limit(names[flag], int(value))
    _set_limit("RLIMIT_CORE", 0)
    _die_with_parent()
    os.execv(command[0], command)
    return 127  # pragma: no cover (execv does not return)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
