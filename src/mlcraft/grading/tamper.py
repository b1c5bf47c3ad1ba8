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
- ``tags``: a cell carries tags, which are ignored when grading (e.g. ``skip-execution``);
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

from mlcraft.grading.notebooks import HIDDEN_MARKERS

__all__ = ["Tamper", "detect_tampering", "restore_metadata"]


@dataclass(frozen=True)
class Tamper:
    """One change to a cell a student must not change."""

    cell: str  # grade id
    kind: str  # deleted, metadata stripped, edited, retyped, points, unlocked, duplicated, tags
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.cell} ({self.kind}{': ' + self.detail if self.detail else ''})"


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
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id:
            ids[grade_id] += 1
            by_id.setdefault(grade_id, cell)
        tags = cell.metadata.get("tags")
        if tags:
            found.append(Tamper(grade_id or "cell", "tags", ", ".join(map(str, tags))))
    found += [Tamper(i, "duplicated", f"{n} cells") for i, n in ids.items() if n > 1]
    plain_sources = {_norm(c.source) for c in nb.cells if not c.metadata.get("nbgrader", {}).get("grade_id")}
    with Gradebook(db_url) as gradebook:
        source_nb = gradebook.find_notebook(notebook, assignment)
        graded = {c.name: float(c.max_score) for c in source_nb.grade_cells}
        for source in source_nb.source_cells:
            if not (source.locked or source.name in graded or source.name in {t.name for t in source_nb.task_cells}):
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
