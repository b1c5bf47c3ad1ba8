"""What reaches the grader from outside: notebook files, forged metadata, the worker's event log,
and the feedback page the instructor opens (fast tests; the corpus grades the same cases end to end)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import nbformat
import pytest

from mlcraft.classroom.grading.classroom import Status, _read_events, _result_from_events
from mlcraft.classroom.grading.feedback import CSP, SafeOutputs, lock_down
from mlcraft.classroom.grading.notebooks import InvalidNotebookError, read_notebook_bytes
from mlcraft.classroom.grading.tamper import restore_metadata
from mlcraft.classroom.grading.worker import EventLog

if TYPE_CHECKING:  # mypy knows tests/grading/conftest.py by its full module name
    from tests.grading.conftest import MODULE
else:  # pytest puts tests/grading on sys.path and imports the file as `conftest`
    from conftest import MODULE


def _v4() -> nbformat.NotebookNode:
    nb: nbformat.NotebookNode = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_markdown_cell("hi")]
    return nb


def test_a_v4_notebook_loads_as_is() -> None:
    nb, version = read_notebook_bytes(nbformat.writes(_v4()).encode(), "a.ipynb")
    assert version == 4 and [c.source for c in nb.cells] == ["x = 1", "hi"]


def test_an_nbformat_3_notebook_is_converted() -> None:
    nb, version = read_notebook_bytes(nbformat.writes(nbformat.convert(_v4(), 3), version=3).encode(), "a.ipynb")
    assert version == 3 and nb.nbformat == 4 and [c.source for c in nb.cells] == ["x = 1", "hi"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"nbformat": 4, "cells": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
        (b'{"nbformat": 5, "nbformat_minor": 0, "metadata": {}, "cells": []}', "nbformat 5 is not"),
        (b'{"nbformat": "4", "cells": []}', "nbformat '4' is not"),
        (b"\xff\xfe", "not UTF-8"),
        (b'{"cells": [1,', "not valid JSON"),
        (b'{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [{"cell_type": "nope"}]}', "not a valid"),
    ],
    ids=["nested", "v5", "string-version", "utf8", "json", "schema"],
)
def test_broken_notebooks_say_what_is_wrong(data: bytes, message: str) -> None:
    with pytest.raises(InvalidNotebookError, match=message):
        read_notebook_bytes(data, "a.ipynb")


def _graded_source(tiny_course: Path) -> tuple[str, nbformat.NotebookNode]:
    """A gradebook that knows the tiny course (built by a prepare job) and its release."""
    from mlcraft.classroom.grading.classroom import open_run
    from mlcraft.classroom.grading.settings import GradeSettings

    out = tiny_course.parent / "prepared"
    gradebook = out / "template" / "gradebook.db"
    if not gradebook.exists():
        run = open_run(tiny_course / "submissions", tiny_course, out, [MODULE], GradeSettings(workers=1), servers=1)
        run.servers.close()
    release = nbformat.read(tiny_course / "exercises" / MODULE / f"{MODULE}.ipynb", as_version=4)
    return f"sqlite:///{gradebook}", release


def test_forged_roles_are_restored_and_reported(tiny_course: Path) -> None:
    db_url, nb = _graded_source(tiny_course)
    by_id = {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells if "nbgrader" in c.metadata}
    by_id["add-answer"].metadata["nbgrader"].update(grade=True, points=50)  # an answer claims to be a test
    by_id["test-add"].metadata["nbgrader"].update(solution=True)  # a test claims to be an answer
    bonus = nbformat.v4.new_code_cell("pass")
    bonus.metadata["nbgrader"] = {"grade": True, "grade_id": "bonus", "points": 100, "locked": True, "solution": False}
    nb.cells.append(bonus)
    found = {str(t) for t in restore_metadata(nb, db_url, MODULE, MODULE)}
    assert any(t.startswith("add-answer (forged") for t in found), found
    assert any(t.startswith("test-add (forged") for t in found), found
    assert any(t.startswith("bonus (forged") for t in found), found
    assert by_id["add-answer"].metadata["nbgrader"]["grade"] is False
    assert by_id["test-add"].metadata["nbgrader"]["solution"] is False
    assert by_id["test-add"].metadata["nbgrader"]["points"] == 2
    assert "nbgrader" not in nb.cells[-1].metadata, "an unknown graded cell becomes an ordinary cell"


def test_an_untouched_release_has_nothing_to_restore(tiny_course: Path) -> None:
    db_url, nb = _graded_source(tiny_course)
    assert restore_metadata(nb, db_url, MODULE, MODULE) == []


def _log(path: Path, events: list[dict[str, object]], tail: str = "") -> Path:
    log = EventLog(path)
    for event in events:
        log.write(event)
    log.close()
    if tail:
        with path.open("a", encoding="utf-8") as handle:
            handle.write(tail)
    return path


def test_a_worker_killed_after_some_verdicts_keeps_their_points(tmp_path: Path) -> None:
    path = _log(
        tmp_path / "events.jsonl",
        [
            {"event": "tampered", "items": []},
            {"event": "cell", "cell": "test-add", "points": 2.0, "max_points": 2.0},
            {"event": "cell", "cell": "test-mul", "points": 0.0, "max_points": 1.0},
        ],
        tail='{"event": "cell", "cell": "test-sc',  # the line being written when it was killed
    )
    assert len(_read_events(path)) == 3
    result = _result_from_events("ann", MODULE, path, None, "", 960)
    assert result.status is Status.TIMEOUT and result.score == 2.0
    assert result.cells == {"test-add": (2.0, 2.0), "test-mul": (0.0, 1.0)}
    assert any("grading stopped after 960 s" in f for f in result.flags)


def test_a_worker_killed_before_any_verdict_is_an_error(tmp_path: Path) -> None:
    path = _log(tmp_path / "events.jsonl", [{"event": "tampered", "items": []}])
    result = _result_from_events("ann", MODULE, path, None, "", 960)
    assert result.status is Status.ERROR and "before any test was decided" in result.detail


def test_a_finished_worker_reports_totals_flags_and_feedback(tmp_path: Path) -> None:
    cells = {"test-add": [2.0, 2.0], "test-mul": [1.0, 1.0]}
    path = _log(
        tmp_path / "events.jsonl",
        [
            {"event": "tampered", "items": ["test-mul (points: 100 instead of 1)"]},
            {"event": "flag", "cell": "add-answer", "index": 1, "kind": "output", "detail": "cut"},
            {"event": "graded", "score": 3.0, "max_score": 3.0, "cells": cells},
            {"event": "feedback", "path": "/x/feedback.html"},
            {"event": "done", "ok": True, "stage": "feedback", "error": ""},
        ],
    )
    result = _result_from_events("ann", MODULE, path, 0, "", 960)
    assert (result.status, result.score, result.feedback) == (Status.TAMPERED, 3.0, "/x/feedback.html")
    assert "output cut: add-answer" in result.flags and "tampered: test-mul (points" in result.detail


def test_a_failed_worker_says_which_stage(tmp_path: Path) -> None:
    path = _log(
        tmp_path / "e.jsonl", [{"event": "done", "ok": False, "stage": "autograde", "error": "x\nValueError: boom"}]
    )
    result = _result_from_events("ann", MODULE, path, 1, "", 960)
    assert result.status is Status.ERROR and result.detail == "nbgrader autograde failed: ValueError: boom"


def test_safe_outputs_keep_text_and_images_only() -> None:
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [
        nbformat.v4.new_output("display_data", {"text/html": "<script>x</script>", "text/plain": "<HTML object>"}),
        nbformat.v4.new_output("display_data", {"application/javascript": "alert(1)"}),
        nbformat.v4.new_output("display_data", {"image/png": "iVBORw0KGgo=", "image/svg+xml": "<svg/>"}),
        nbformat.v4.new_output("stream", name="stdout", text="<b>kept as text</b>"),
    ]
    note = nbformat.v4.new_markdown_cell("![x](attachment:a.png)")
    note.attachments = {"a.png": {"image/png": "xx"}}
    nb = nbformat.v4.new_notebook(cells=[cell, note])
    # Called as the exporter calls it (a disabled one does nothing); nbconvert's Preprocessor.__init__ is untyped.
    safe = SafeOutputs()(nb, {})[0].cells[0]  # type: ignore[no-untyped-call]
    html, js, image, stream = safe.outputs
    assert set(html.data) == {"text/plain"} and "text/html output not shown" in html.data["text/plain"]
    assert set(js.data) == {"text/plain"} and "application/javascript" in js.data["text/plain"]
    assert set(image.data) == {"image/png", "text/plain"}
    assert stream.text == "<b>kept as text</b>"
    assert "attachments" not in nb.cells[1]


def test_lock_down_puts_the_policy_first_in_head(tmp_path: Path) -> None:
    page = tmp_path / "f.html"
    page.write_text("<!DOCTYPE html><html><head><script>x()</script></head><body></body></html>", encoding="utf-8")
    lock_down(page)
    text = page.read_text(encoding="utf-8")
    assert text.index("Content-Security-Policy") < text.index("<script>") and CSP in text
    bare = tmp_path / "bare.html"
    bare.write_text("<p>no head</p>", encoding="utf-8")
    with pytest.raises(ValueError, match="no <head>"):
        lock_down(bare)
    assert '"' not in CSP, "a double quote would end the content attribute early"


def test_markdown_and_raw_cells_lose_their_raw_html() -> None:
    hostile = '<meta http-equiv="refresh" content="0;url=https://evil.example/">\n**bold** <script>x()</script>'
    for cell in (nbformat.v4.new_markdown_cell(hostile), nbformat.v4.new_raw_cell(hostile)):
        cell.metadata["raw_mimetype"] = "text/html"
        safe = SafeOutputs()(nbformat.v4.new_notebook(cells=[cell]), {})[0].cells[0]  # type: ignore[no-untyped-call]
        assert safe.cell_type == "markdown" and "<" not in safe.source and "**bold**" in safe.source
        assert "raw_mimetype" not in safe.metadata


def test_tags_count_only_on_protected_cells_and_moved_cells_are_reported(tiny_course: Path) -> None:
    from mlcraft.classroom.grading.tamper import detect_tampering

    db_url, nb = _graded_source(tiny_course)
    scratch = nbformat.v4.new_code_cell("print('my notes')")
    scratch.metadata["tags"] = ["hide-input"]
    nb.cells.append(scratch)
    assert detect_tampering(nb, db_url, MODULE, MODULE) == [], "a tag on the learner's own cell is not tampering"
    tests = [i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == "test-add"]
    nb.cells.append(nb.cells.pop(tests[0]))  # the add test moved to the end
    found = [str(t) for t in detect_tampering(nb, db_url, MODULE, MODULE)]
    assert len(found) == 1 and "(moved" in found[0], found


def test_an_answer_deleted_with_its_test_is_put_back_in_place(tiny_course: Path) -> None:
    from mlcraft.classroom.grading.tamper import restore_missing_cells

    db_url, nb = _graded_source(tiny_course)
    before = [c.metadata["nbgrader"]["grade_id"] for c in nb.cells if "nbgrader" in c.metadata]
    nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") not in ("add-answer", "test-add")]
    assert sorted(restore_missing_cells(nb, db_url, MODULE, MODULE)) == ["add-answer", "test-add"]
    assert [c.metadata["nbgrader"]["grade_id"] for c in nb.cells if "nbgrader" in c.metadata] == before
    answer = next(c for c in nb.cells if c.metadata["nbgrader"].get("grade_id") == "add-answer")
    assert "missing from the submission" in answer.source and "a + b" not in answer.source, "no solution is put back"
    assert restore_missing_cells(nb, db_url, MODULE, MODULE) == []
