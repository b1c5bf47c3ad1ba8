"""Running nbgrader and Jupytext in child processes of this interpreter."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["python_env", "run_python", "tail"]


def python_env() -> dict[str, str]:
    """The environment for a child process, with this interpreter's ``bin`` first on ``PATH``.

    nbgrader shells out to console scripts (``alembic`` for the gradebook schema); when the
    CLI runs as ``.venv/bin/mlcraft`` without an activated venv they would not be found.
    """
    env = dict(os.environ)
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", "")]) if env.get("PATH") else bin_dir
    return env


def tail(text: str, lines: int = 15) -> str:
    """The last ``lines`` lines of ``text``."""
    return "\n".join(text.strip().splitlines()[-lines:])


def run_python(args: list[str], cwd: Path, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` with this interpreter, output captured as text, never raising on exit codes.

    Raises:
        subprocess.TimeoutExpired: when ``timeout`` (seconds) passes; the child is killed.
    """
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=python_env(), capture_output=True, text=True, timeout=timeout, check=False
    )
