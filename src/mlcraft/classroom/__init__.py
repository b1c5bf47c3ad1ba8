"""Classroom tooling: the ``mlcraft`` command line, exercise release and grading, and the helpers
that the exercises' hidden tests import (:mod:`mlcraft.classroom.testing`).

This subpackage sits beside the machine-learning layers, never under them: it may import
``mlcraft.utils`` or ``mlcraft.config``, and no ML module imports it (checked by
``tests/test_layers.py``).
"""

from __future__ import annotations

import sys

__all__ = ["main"]


def main() -> None:
    """The ``mlcraft`` command. It needs the classroom extra; without it, say so in one line."""
    try:
        from mlcraft.classroom.cli import app
    except ModuleNotFoundError as err:
        sys.exit(
            f"error: the mlcraft command needs the classroom tools ({err.name} is not installed): "
            "pip install 'mlcraft[classroom]'"
        )
    app()
