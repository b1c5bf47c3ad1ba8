"""Versions of the libraries whose private internals mlcraft relies on, checked at run time.

The grader subclasses nbgrader's preprocessors and nbclient's client, and the ML layers use
structlog's lazy logger proxy. ``pyproject.toml`` bounds these to the releases tested here;
:func:`unsupported_versions` catches an environment that got past those bounds anyway (installed
with ``--no-deps``, or upgraded by hand), and ``mlcraft doctor`` and ``mlcraft grade`` report it
before anything is graded with a library whose internals may have moved.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version

__all__ = ["SUPPORTED", "parse_version", "unsupported_versions"]

#: Distribution -> (lowest supported version, first unsupported version), as in pyproject.toml.
SUPPORTED: dict[str, tuple[str, str]] = {
    "nbgrader": ("0.9.2", "0.10"),
    "nbclient": ("0.8", "0.12"),
    "structlog": ("23.1", "27"),
}


def parse_version(text: str) -> tuple[int, ...]:
    """``"0.9.6"`` -> ``(0, 9, 6)``; pre-release and local suffixes (``rc1``, ``.dev0``, ``+cpu``) are dropped."""
    numbers: list[int] = []
    for part in text.split("+")[0].split("."):
        digits = ""
        for char in part:
            if not char.isdigit():
                break
            digits += char
        if not digits:
            break
        numbers.append(int(digits))
    if not numbers:
        raise ValueError(f"not a version number: {text!r}")
    return tuple(numbers)


def unsupported_versions(lookup: Callable[[str], str] = version) -> list[str]:
    """One line per library installed at a version outside :data:`SUPPORTED` (missing ones are
    skipped: the import that needs them fails with its own message)."""
    problems: list[str] = []
    for name, (low, high) in SUPPORTED.items():
        try:
            found = lookup(name)
        except PackageNotFoundError:
            continue
        if not parse_version(low) <= parse_version(found) < parse_version(high):
            problems.append(
                f"{name} {found} is not supported (mlcraft needs >={low},<{high}; it relies on internals "
                f"that change between releases): pip install '{name}>={low},<{high}'"
            )
    return problems
