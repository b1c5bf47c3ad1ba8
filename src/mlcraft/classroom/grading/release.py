"""Generate the learner release (``exercises/``) from the instructor sources (``solutions/``).

The pipeline: sync each source's Jupytext twin into its ``.ipynb`` (nbgrader reads only the
notebook), run ``nbgrader generate_assignment`` without a gradebook, then drop the Jupytext
metadata from the released notebooks so they are never paired on a learner's machine.
The result is byte-deterministic, so ``check_release`` can regenerate and compare.
"""

from __future__ import annotations

import filecmp
import tempfile
from pathlib import Path

import nbformat

from mlcraft.classroom.grading.notebooks import check_release_leaks
from mlcraft.classroom.grading.paths import list_modules
from mlcraft.classroom.grading.process import run_python, tail
from mlcraft.utils.logging import get_logger

__all__ = ["ReleaseError", "check_release", "release", "resolve_modules", "sync_twins"]

log = get_logger(__name__)


class ReleaseError(RuntimeError):
    """nbgrader or Jupytext failed; the message carries their last output lines."""


def _run(args: list[str], cwd: Path, what: str) -> None:
    proc = run_python(args, cwd)
    if proc.returncode != 0:
        raise ReleaseError(f"{what} failed (exit {proc.returncode}):\n{tail(proc.stdout + proc.stderr)}")


def resolve_modules(source_dir: Path, requested: list[str] | None) -> list[str]:
    """The requested modules (all when ``None`` or empty), checked against ``source_dir``.

    Raises:
        ValueError: for an unknown module, listing the known ones.
    """
    known = list_modules(source_dir)
    if not requested:
        return known
    unknown = [m for m in requested if m not in known]
    if unknown:
        raise ValueError(f"unknown module {', '.join(unknown)}; known modules: {', '.join(known) or 'none'}")
    return list(requested)


def sync_twins(paths: list[Path]) -> None:
    """``jupytext --sync`` each ``.py`` twin so its ``.ipynb`` holds the same cells."""
    for py in paths:
        _run(["-m", "jupytext", "--sync", "--quiet", str(py)], py.parent, f"jupytext --sync {py}")


def _strip_jupytext_metadata(folder: Path) -> None:
    for path in sorted(folder.rglob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        if "jupytext" in nb.metadata:
            del nb.metadata["jupytext"]
            nbformat.write(nb, path)


def release(
    course_root: Path, modules: list[str] | None = None, *, dest: Path | None = None, sync: bool = True
) -> list[str]:
    """Regenerate the learner release of ``modules`` (default: all) into ``dest`` (default: ``exercises/``).

    Returns the modules released.

    Raises:
        ValueError: for an unknown module.
        ReleaseError: when Jupytext or nbgrader fails.
    """
    source_dir = course_root / "solutions"
    chosen = resolve_modules(source_dir, modules)
    release_dir = (dest or course_root / "exercises").resolve()
    for module in chosen:
        if sync:
            sync_twins([source_dir / module / f"{module}.py"])
        cmd = ["-m", "nbgrader", "generate_assignment", module, "--force", "--no-db"]
        if dest is not None:
            cmd.append(f"--CourseDirectory.release_directory={release_dir}")
        _run(cmd, course_root, f"nbgrader generate_assignment {module}")
        _strip_jupytext_metadata(release_dir / module)
        log.info("released", module=module, folder=str(release_dir / module))
    return chosen


def _folder_differences(expected: Path, actual: Path) -> list[str]:
    comparison = filecmp.dircmp(expected, actual, ignore=[])
    problems = [f"{actual / name}: missing (a fresh release has it)" for name in comparison.left_only]
    problems += [f"{actual / name}: not in a fresh release" for name in comparison.right_only]
    for name in comparison.common_files:
        if not filecmp.cmp(expected / name, actual / name, shallow=False):
            problems.append(f"{actual / name}: differs from a fresh release; run `make release`")
    for name in comparison.common_dirs:
        problems += _folder_differences(expected / name, actual / name)
    return problems


def check_release(course_root: Path, modules: list[str] | None = None) -> list[str]:
    """Problems with the committed release: stale files and leaks. Empty when all is well.

    Regenerates each module into a temporary folder (without re-syncing twins, so a stale
    ``.ipynb`` shows up in the twin check, not here) and compares it byte for byte.
    """
    source_dir = course_root / "solutions"
    chosen = resolve_modules(source_dir, modules)
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="mlcraft-release-") as tmp:
        fresh = Path(tmp)
        release(course_root, chosen, dest=fresh, sync=False)
        for module in chosen:
            committed = course_root / "exercises" / module
            if not committed.is_dir():
                problems.append(f"{committed}: missing; run `make release`")
                continue
            problems += _folder_differences(fresh / module, committed)
    problems += check_release_leaks(source_dir, course_root / "exercises", chosen)
    return problems
