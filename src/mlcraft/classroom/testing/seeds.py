"""Random inputs of hidden tests that knowing the public code does not reveal.

A hidden test that draws random inputs with a literal seed draws the same inputs for everyone
who can read the assignment's source (in a class, a copy of the course leaks). With
:func:`grading_seed` the instructor's secret chooses them at grading time: set
``MLCRAFT_GRADING_SECRET`` (any string) or ``MLCRAFT_GRADING_SECRET_FILE`` (a file outside the
course) where ``mlcraft grade`` runs, and every named seed becomes a function of the secret and
the name. Test cells run in the grading process, never in the learner's kernel, and the kernel's
sandbox starts with an empty environment: the secret never reaches the learner's code. Without
a secret (self-study, the course's own checks), the default seed is used, so results are
reproducible.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["SECRET_ENV", "SECRET_FILE_ENV", "grading_seed"]

SECRET_ENV = "MLCRAFT_GRADING_SECRET"
SECRET_FILE_ENV = "MLCRAFT_GRADING_SECRET_FILE"


def _secret() -> bytes | None:
    value = os.environ.get(SECRET_ENV)
    if value:
        return value.encode("utf-8")
    path = os.environ.get(SECRET_FILE_ENV)
    if path:
        try:
            data = Path(path).read_bytes().strip()
        except OSError as err:
            raise RuntimeError(f"{SECRET_FILE_ENV}={path} cannot be read ({err.strerror}); fix the path") from None
        if not data:
            raise RuntimeError(f"{SECRET_FILE_ENV}={path} is empty; write a secret in it")
        return data
    return None


def grading_seed(name: str, default: int) -> int:
    """The seed for the hidden test input ``name``: ``default`` without an instructor secret,
    else a 32-bit number derived from the secret and ``name`` (SHA-256).

    Raises:
        RuntimeError: if ``MLCRAFT_GRADING_SECRET_FILE`` names a file that is missing or empty.
    """
    secret = _secret()
    if secret is None:
        return default
    digest = hashlib.sha256(secret + b"\0" + name.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "little")
