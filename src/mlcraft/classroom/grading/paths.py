"""Where the course lives on disk and where grading writes.

The course root is the folder holding ``nbgrader_config.py`` and ``solutions/``. Grading
output (gradebook, autograded copies, feedback) goes to ``$MLCRAFT_GRADING_DIR``, by default
``$XDG_DATA_HOME/mlcraft/classroom/grading`` (``~/.local/share/mlcraft/classroom/grading``): never inside the repo.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = [
    "MODULE_PATTERN",
    "CourseLayoutError",
    "find_course_root",
    "grading_dir",
    "list_modules",
    "nbgrader_ignore_patterns",
]

#: Module ids look like ``00_orientation``: two digits, underscore, lowercase topic.
MODULE_PATTERN = re.compile(r"^\d{2}_[a-z][a-z0-9_]*$")

#: nbgrader's own defaults, kept when we add the twins.
_NBGRADER_DEFAULT_IGNORE = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback"]


class CourseLayoutError(RuntimeError):
    """The course folder is missing or incomplete."""


def find_course_root(start: Path | None = None) -> Path:
    """The course root: ``$MLCRAFT_COURSE_ROOT`` if set, else the nearest parent of ``start``
    (default: the working directory) that holds ``nbgrader_config.py`` and ``solutions/``.

    Raises:
        CourseLayoutError: when no such folder is found.
    """
    env = os.environ.get("MLCRAFT_COURSE_ROOT")
    if env:
        root = Path(env).expanduser().resolve()
        if not (root / "solutions").is_dir():
            raise CourseLayoutError(
                f"MLCRAFT_COURSE_ROOT={env} has no solutions/ folder; point it at the course checkout"
            )
        return root
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "nbgrader_config.py").is_file() and (folder / "solutions").is_dir():
            return folder
    raise CourseLayoutError(
        f"no course found at or above {here}: run this inside the mlcraft checkout "
        "or set MLCRAFT_COURSE_ROOT to its path"
    )


def grading_dir() -> Path:
    """Folder for the gradebook and grading output, outside the repository."""
    env = os.environ.get("MLCRAFT_GRADING_DIR")
    if env:
        return Path(env).expanduser().resolve()
    data_home = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    return (data_home / "mlcraft" / "grading").resolve()


def list_modules(source_dir: Path) -> list[str]:
    """Module ids with an assignment source (``solutions/NN_topic/NN_topic.ipynb``), sorted."""
    if not source_dir.is_dir():
        return []
    return sorted(
        d.name for d in source_dir.iterdir() if MODULE_PATTERN.match(d.name) and (d / f"{d.name}.ipynb").is_file()
    )


def nbgrader_ignore_patterns(source_dir: Path) -> list[str]:
    """nbgrader's default ignore list plus the Jupytext ``.py`` twin of every source notebook.

    nbgrader copies every non-notebook file of an assignment into the release; the twins
    contain the solutions and hidden tests, so they must never be copied.
    """
    twins = sorted({nb.with_suffix(".py").name for nb in source_dir.glob("*/*.ipynb")}) if source_dir.is_dir() else []
    return [*_NBGRADER_DEFAULT_IGNORE, *twins]
