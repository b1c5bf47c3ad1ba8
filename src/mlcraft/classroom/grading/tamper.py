"""Tamper detection: compare a submitted notebook with the source cells nbgrader recorded.

nbgrader restores what it can during ``autograde`` (locked cells from their checksum, points,
cell types, deleted graded cells with ``add_missing_cells``) but only *logs* it. This module
reports it, per cell, before grading, so the instructor sees who tried what:

- ``deleted``: a graded, locked or task cell of the source is not in the submission;
- ``metadata stripped``: the same, but a cell with the cell's source is still there without
  its nbgrader metadata (so nbgrader would not have graded it);
- ``edited``: a locked cell's source differs from the source (``assert True``);
- ``retyped``: a graded or solution cell changed type (code to markdown or raw);
- ``points``: a graded cell claims other points than the source;
- ``unlocked``: a locked cell's ``locked`` flag was cleared;
- ``duplicated``: a grade id appears more than once;
- ``tags``: a test or locked cell carries tags, which are ignored when grading (e.g.
  ``skip-execution``); tags on the learner's own cells are ignored and not reported;
- ``moved``: a locked or test cell is out of the source's order (an imports cell moved below
  the tests);
- ``forged``: a cell claims another role than the source gives it (a solution cell marked
  ``grade: true``, a test cell marked as a solution), or a cell claims a grade id the
  assignment does not have (an extra graded cell).

:func:`restore_metadata` then puts the source's nbgrader metadata back on every cell.

Grading then runs on the restored notebook: the score is what the restored tests say.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from nbgrader.api import Gradebook

from mlcraft.classroom.grading.notebooks import HIDDEN_MARKERS

__all__ = ["Tamper", "detect_tampering", "restore_metadata", "restore_missing_cells"]


def _printable(text: object, limit: int = 60) -> str:
    """A cell id as the student wrote it may hold anything: shown only as short, plain text."""
    clean = "".join(ch if ch.isprintable() else "?" for ch in str(text))
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"


@dataclass(frozen=True)
class Tamper:
    """One change to a cell a student must not change."""

    cell: str  # grade id
    kind: str  # deleted, metadata stripped, edited, retyped, points, unlocked, duplicated, tags
    detail: str = ""

    def __str__(self) -> str:
        return f"{_printable(self.cell)} ({self.kind}{': ' + _printable(self.detail, 200) if self.detail else ''})"


def _norm(source: str) -> str:
    return "\n".join(line.rstrip() for line in source.strip().splitlines())


def _released(source: str) -> str:
    """A source cell as learners receive it: hidden-test blocks removed (nbgrader's ClearHiddenTests)."""
    kept, hidden = [], False
    for line in source.splitlines():
        stripped = line.strip()
        if stripped == HIDDEN_MARKERS[0]:
            hidden = True
        elif stripped == HIDDEN_MARKERS[1]:
            hidden = False
        elif not hidden:
            kept.append(line)
    return _norm("\n".join(kept))


def _edited(cell: Any, source: Any) -> bool:
    """Whether a locked cell's text differs from the source, hidden tests aside."""
    return _norm(cell.source) not in (_norm(source.source), _released(source.source))


def detect_tampering(nb: Any, db_url: str, assignment: str, notebook: str) -> list[Tamper]:
    """Every protected-cell change in ``nb`` relative to the source recorded in the gradebook."""
    found: list[Tamper] = []
    by_id: dict[str, Any] = {}
    ids: Counter[str] = Counter()
    order: list[str] = []  # protected cells' ids as they stand in the submission
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id:
            ids[grade_id] += 1
            by_id.setdefault(grade_id, cell)
            order.append(grade_id)
    found += [Tamper(i, "duplicated", f"{n} cells") for i, n in ids.items() if n > 1]
    plain_sources = {_norm(c.source) for c in nb.cells if not c.metadata.get("nbgrader", {}).get("grade_id")}
    with Gradebook(db_url) as gradebook:
        source_nb = gradebook.find_notebook(notebook, assignment)
        graded = {c.name: float(c.max_score) for c in source_nb.grade_cells}
        solutions = {c.name for c in source_nb.solution_cells}
        tasks = {t.name for t in source_nb.task_cells}
        protected = [
            s.name for s in source_nb.source_cells if s.locked or (s.name in graded and s.name not in solutions)
        ]
        # Tags on a test or locked cell (``skip-execution``) are an attempt; on the learner's own
        # cells they are ignored like everywhere else, and say nothing.
        for name in protected:
            tags = by_id[name].metadata.get("tags") if name in by_id else None
            if tags:
                found.append(Tamper(name, "tags", ", ".join(map(str, tags))))
        # The locked cells keep their order (an imports cell moved below the tests, say).
        kept = [name for name in order if name in set(protected)]
        expected = [name for name in protected if name in set(kept)]
        if kept != expected:
            moved = next((a for a, b in zip(kept, expected, strict=False) if a != b), kept[-1])
            found.append(Tamper(moved, "moved", "protected cells are not in the source's order"))
        for source in source_nb.source_cells:
            if not (source.locked or source.name in graded or source.name in tasks):
                continue
            cell = by_id.get(source.name)
            if cell is None:
                stripped = {_norm(source.source), _released(source.source)} & plain_sources
                kind = "metadata stripped" if stripped else "deleted"
                found.append(Tamper(source.name, kind))
                continue
            if cell.cell_type != source.cell_type:
                found.append(Tamper(source.name, "retyped", f"{source.cell_type} -> {cell.cell_type}"))
            meta = cell.metadata.get("nbgrader", {})
            if source.name in graded and meta.get("points") is not None:
                try:
                    claimed = float(meta["points"])
                except (TypeError, ValueError):
                    claimed = float("nan")
                if claimed != graded[source.name]:
                    found.append(Tamper(source.name, "points", f"{meta['points']} instead of {graded[source.name]:g}"))
            if source.locked and not meta.get("locked", False):
                found.append(Tamper(source.name, "unlocked"))
            if source.locked and cell.cell_type == source.cell_type and _edited(cell, source):
                found.append(Tamper(source.name, "edited"))
    return found


def restore_metadata(nb: Any, db_url: str, assignment: str, notebook: str) -> list[Tamper]:
    """Give every cell of ``nb`` the nbgrader metadata the source gave it, in place.

    A cell with a grade id the source does not have loses its nbgrader metadata (it becomes an
    ordinary cell of the student's). Returns the ``forged`` findings: roles claimed that the
    source did not give (changed points or a cleared ``locked`` flag are restored too, and
    reported by :func:`detect_tampering`).
    """
    found: list[Tamper] = []
    with Gradebook(db_url) as gradebook:
        source_nb = gradebook.find_notebook(notebook, assignment)
        graded = {c.name: float(c.max_score) for c in source_nb.grade_cells}
        solutions = {c.name for c in source_nb.solution_cells}
        tasks = {c.name for c in source_nb.task_cells}
        locked = {c.name: bool(c.locked) for c in source_nb.source_cells}
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader")
        if not isinstance(meta, dict):
            continue
        grade_id = meta.get("grade_id")
        known = isinstance(grade_id, str) and grade_id in locked
        if not known:
            claims = [k for k in ("grade", "solution", "task", "locked") if meta.get(k)]
            if claims:
                found.append(
                    Tamper(
                        str(grade_id or "cell"),
                        "forged",
                        f"claims {', '.join(claims)} for a cell the assignment does not have",
                    )
                )
            del cell.metadata["nbgrader"]
            continue
        canonical = {
            "grade": grade_id in graded,
            "grade_id": grade_id,
            "locked": locked[grade_id],
            "schema_version": 3,
            "solution": grade_id in solutions,
            "task": grade_id in tasks,
        }
        if grade_id in graded:
            canonical["points"] = graded[grade_id]
        roles = [k for k in ("grade", "solution", "task") if bool(meta.get(k)) != canonical[k]]
        if roles:
            claimed = ", ".join(f"{k}: {bool(meta.get(k))}" for k in roles)
            found.append(Tamper(str(grade_id), "forged", f"claims {claimed}"))
        for key in ("checksum", "cell_type"):
            if key in meta:
                canonical[key] = meta[key]
        cell.metadata["nbgrader"] = canonical
    return found


def restore_missing_cells(nb: Any, db_url: str, assignment: str, notebook: str) -> list[str]:
    """Put back, in place, every cell of the source with an nbgrader id that ``nb`` lacks, after
    the nearest earlier source cell that is there: tests and locked cells as the source has
    them, answer cells as an empty answer. Returns the ids put back (``deleted`` findings of
    :func:`detect_tampering`). nbgrader's own repair fails when an answer and its test are both
    gone; this one does not.
    """
    import nbformat

    with Gradebook(db_url) as gradebook:
        source_nb = gradebook.find_notebook(notebook, assignment)
        graded = {c.name: float(c.max_score) for c in source_nb.grade_cells}
        solutions = {c.name for c in source_nb.solution_cells}
        tasks = {c.name for c in source_nb.task_cells}
        sources = [(c.name, c.cell_type, c.source, bool(c.locked), c.checksum) for c in source_nb.source_cells]
    position = {
        cell.metadata["nbgrader"]["grade_id"]: index
        for index, cell in enumerate(nb.cells)
        if isinstance(cell.metadata.get("nbgrader"), dict) and cell.metadata["nbgrader"].get("grade_id")
    }
    restored = []
    after = -1  # insert after this index of nb.cells
    for name, cell_type, source, locked, checksum in sources:
        if name in position:
            after = position[name]
            continue
        text = "# This answer cell was missing from the submission.\n" if name in solutions else source
        cell = nbformat.v4.new_markdown_cell(text) if cell_type == "markdown" else nbformat.v4.new_code_cell(text)
        meta = {"grade": name in graded, "grade_id": name, "locked": locked, "schema_version": 3}
        meta |= {"solution": name in solutions, "task": name in tasks}
        if name in graded:
            meta["points"] = graded[name]
        if locked and checksum:
            meta["checksum"] = checksum
        cell.metadata["nbgrader"] = meta
        after += 1
        nb.cells.insert(after, cell)
        position = {k: (v + 1 if v >= after else v) for k, v in position.items()}
        position[name] = after
        restored.append(name)
    return restored
