"""The adversarial corpus: hostile and broken submissions graded together with honest ones.

Every kind in ``tests/grading/corpus/`` (see its README) is a submission to a small corpus
assignment. All of them are graded in one run of `grade_classroom` with two workers and tight
limits, as whoever runs the tests (root in CI); each must get its declared status, score and
flags, and the honest submissions in the same run keep their exact scores. Side effects are
checked outside the sandbox: no process a submission started survives, no gradebook or other
submission changed, nothing reached the network listener, no file was planted in the Python
environment, the course or the output, and the grader's environment did not leak. When the
tests run as root, the kinds that attack the sandbox are graded a second time by an
unprivileged user (``test_grading_corpus_unprivileged.py``).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import jupytext
import nbformat
import pytest

from mlcraft.classroom.grading.classroom import GradeSettings, Status, SubmissionResult, grade_classroom
from mlcraft.classroom.grading.sandbox import sandbox_status

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).resolve().parent / "corpus"
MODULE = "90_corpus"
SETTINGS = GradeSettings(
    cell_timeout_s=4,
    submission_timeout_s=60,
    workers=2,
    memory_mb=5120,
    max_output_bytes=100_000,
    scratch_mb=64,
    max_processes=64,
    max_notebook_mb=16,
    max_cells=2000,
    max_notebook_output_mb=1,
    grader_memory_mb=2048,
)
#: Set in the grading process's environment; a kind that finds it has read the grader's secrets.
SECRET_ENV = ("MLCRAFT_CORPUS_SECRET_TOKEN", "c0rpus-s3cret")
#: Any file of this name found outside the sandbox after grading was planted by a submission.
MARKER = "mlcraft-corpus-owned"

SOURCE = """# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Corpus assignment

# %% nbgrader={"grade": false, "grade_id": "imports", "locked": true, "schema_version": 3, "solution": false, "task": false}
import numpy as np
import torch

from mlcraft.classroom.testing import assert_close, call_without


# %% nbgrader={"grade": false, "grade_id": "add-answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def add(a, b):
    ### BEGIN SOLUTION
    return a + b
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-add", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
assert add(1, 2) == 3, "add(1, 2) should be 3"
### BEGIN HIDDEN TESTS
assert add(-5, 5) == 0, "hidden: add(-5, 5) should be 0"
### END HIDDEN TESTS


# %% nbgrader={"grade": false, "grade_id": "mul-answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def mul(a, b):
    ### BEGIN SOLUTION
    return a * b
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-mul", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
assert mul(2, 3) == 6


# %% nbgrader={"grade": false, "grade_id": "scale-answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def scale(x):
    ### BEGIN SOLUTION
    return 2 * x
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-scale", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
x = torch.arange(4.0)
assert torch.allclose(scale(x), 2 * x)
assert np.allclose(scale(x).numpy(), 2 * x.numpy())
assert (scale(x) == 2 * x).all()
np.testing.assert_allclose(scale(x).numpy(), 2 * x.numpy())
assert_close(scale(x), 2 * x, msg="scale doubles")
assert_close(call_without(scale, x, forbidden=("torch.multiply",)), 2 * x, msg="scale without torch.multiply")
"""

ANSWERS = {"add-answer": "def add(a, b):\n    return a + b\n", "mul-answer": "def mul(a, b):\n    return a * b\n"}
ANSWERS["scale-answer"] = "def scale(x):\n    return 2 * x\n"

_HEADER = re.compile(r"^# (expect|cells|flags|detail|sandbox|unprivileged): ?(.*)$", re.MULTILINE)
_SECTION = re.compile(r"^# %% (?P<op>[a-z_]+)(?:=(?P<arg>\S+))?(?: (?P<extra>.+))?$", re.MULTILINE)


@dataclass
class Kind:
    """One corpus file: what to submit and what grading must say."""

    name: str
    description: str
    status: Status
    score: float
    cells: dict[str, float] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    detail: str = ""  # a substring the result's detail must contain
    needs_sandbox: bool = False
    unprivileged: bool = False  # graded again by an unprivileged user when the tests run as root
    ops: list[tuple[str, str, str, str]] = field(default_factory=list)  # (op, arg, extra, text)


def load_kind(path: Path) -> Kind:
    text = path.read_text(encoding="utf-8")
    first = _SECTION.search(text)
    header = text[: first.start()] if first else text
    values = {m[1]: m[2].strip() for m in _HEADER.finditer(header)}
    status_text, _, score = values["expect"].rpartition(" ")
    kind = Kind(
        name=path.stem,
        description=header.split('"""')[1].strip(),
        status=Status(status_text),
        score=float(score),
        cells={k: float(v) for k, v in (item.split("=") for item in values.get("cells", "").split())},
        flags=[f.strip() for f in values.get("flags", "").split("|") if f.strip()],
        detail=values.get("detail", ""),
        needs_sandbox=values.get("sandbox") == "required",
        unprivileged=values.get("unprivileged") == "yes",
    )
    matches = list(_SECTION.finditer(text))
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        body = text[match.end() + 1 : end]
        kind.ops.append((match["op"], match["arg"] or "", match["extra"] or "", body))
    return kind


KINDS = [load_kind(p) for p in sorted(CORPUS.glob("*.case"))]


def _cell(nb: Any, grade_id: str) -> tuple[int, Any]:
    if grade_id == "end":
        return len(nb.cells) - 1, nb.cells[-1]
    for index, cell in enumerate(nb.cells):
        if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            return index, cell
    raise KeyError(f"no cell {grade_id}")


def _generate(kind: str, nb: Any) -> str:
    """The text of a generated submission (too large or too odd to keep in a case file)."""
    # nbformat is untyped: ``writes`` returns the notebook's JSON text.
    if kind == "nested_json":
        return '{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": ' + "[" * 100_000 + "]" * 100_000 + "}"
    if kind == "huge":
        nb.cells.append(nbformat.v4.new_markdown_cell("x" * (20 * 2**20)))
        return cast(str, nbformat.writes(nb))
    if kind == "nbformat3":
        return cast(str, nbformat.writes(nbformat.convert(nb, 3), version=3))
    if kind == "nbformat5":
        return json.dumps({"nbformat": 5, "nbformat_minor": 0, "metadata": {}, "cells": []})
    if kind.startswith("printers"):
        count = int(kind.removeprefix("printers"))
        nb.cells.extend(nbformat.v4.new_code_cell("print('p' * 90_000)") for _ in range(count))
        return cast(str, nbformat.writes(nb))
    if kind.startswith("sleepy"):
        count = int(kind.removeprefix("sleepy"))
        nb.cells.extend(nbformat.v4.new_code_cell("import time\ntime.sleep(0.25)") for _ in range(count))
        return cast(str, nbformat.writes(nb))
    if kind.startswith("cells"):
        count = int(kind.removeprefix("cells"))
        nb.cells.extend(nbformat.v4.new_code_cell("1") for _ in range(count))
        return cast(str, nbformat.writes(nb))
    raise ValueError(f"unknown generated submission {kind}")


def build(kind: Kind, release: Any, folder: Path, values: dict[str, str]) -> None:
    """Write ``kind``'s submission into ``folder`` (``<student>/<module>/``)."""
    folder.mkdir(parents=True)
    target = folder / f"{MODULE}.ipynb"

    def fill(text: str) -> str:
        for key, value in values.items():
            text = text.replace("{" + key + "}", value)
        return text.replace("\\x00", "\x00")

    nb = nbformat.from_dict(json.loads(json.dumps(release)))
    blank = {gid: _cell(nb, gid)[1].source for gid in ANSWERS}
    for grade_id, answer in ANSWERS.items():
        _cell(nb, grade_id)[1].source = answer
    links: list[tuple[str, str]] = []
    for op, arg, extra, body in kind.ops:
        text = fill(body)
        if op == "raw":
            target.write_text(text.strip("\n"), encoding="utf-8")
            return
        if op == "generate":
            target.write_text(_generate(arg, nb), encoding="utf-8")
            return
        if op == "extra":
            (folder / arg).write_text(text, encoding="utf-8")
        elif op == "symlink":
            links.append((arg, fill(extra)))
        elif op == "blank":
            for grade_id, source in blank.items():
                _cell(nb, grade_id)[1].source = source
        elif op == "kernelspec":
            nb.metadata["kernelspec"] = {"name": arg, "display_name": arg, "language": "python"}
        elif op == "move":
            index, cell = _cell(nb, arg)
            del nb.cells[index]
            nb.cells.insert(len(nb.cells) if extra == "end" else _cell(nb, extra)[0], cell)
        elif op == "markdown_cell":
            nb.cells.insert(_cell(nb, arg)[0], nbformat.v4.new_markdown_cell(text.strip("\n")))
        elif op == "add_cell":
            cell = nbformat.v4.new_code_cell(text.strip("\n"))
            if extra:
                cell.metadata["nbgrader"] = json.loads(extra)
            nb.cells.insert(len(nb.cells) if arg == "end" else _cell(nb, arg)[0], cell)
        else:
            index, cell = _cell(nb, arg)
            if op in ("grade_id", "edit"):
                cell.source = text.strip("\n")
            elif op == "delete":
                del nb.cells[index]
            elif op == "strip":
                del cell.metadata["nbgrader"]
                cell.source = text.strip("\n") or cell.source
            elif op == "points":
                cell.metadata["nbgrader"]["points"] = float(extra)
            elif op == "meta":
                cell.metadata["nbgrader"].update(json.loads(extra))
            elif op == "retype":
                new = nbformat.v4.new_markdown_cell(cell.source) if extra == "markdown" else None
                new = new or nbformat.v4.new_raw_cell(cell.source)
                new.metadata = cell.metadata
                nb.cells[index] = new
            elif op == "tags":
                cell.metadata["tags"] = extra.split(",")
            elif op == "duplicate":
                copy = nbformat.from_dict(json.loads(json.dumps(cell)))
                copy.source = text.strip("\n")
                copy["id"] = f"copy-of-{arg}"
                nb.cells.insert(index, copy)
            else:
                raise ValueError(f"{kind.name}: unknown op {op}")
    nbformat.write(nb, target)
    for what, link_target in links:
        if what == "notebook":
            target.unlink()
            target.symlink_to(link_target)
        elif what == "folder":
            student = folder.parent
            shutil.rmtree(student)
            student.symlink_to(link_target, target_is_directory=True)
        else:
            (folder / what).symlink_to(link_target)


def _digest(paths: list[Path]) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths if p.is_file()}


class _Listener:
    """A TCP listener on 127.0.0.1 that records whatever reaches it."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.received: list[bytes] = []
        self.sock.settimeout(0.5)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                self.received.append(conn.recv(1024))

    def close(self) -> None:
        self._stop.set()
        self.thread.join()
        self.sock.close()


@dataclass
class Graded:
    results: dict[str, SubmissionResult]
    sandboxed: bool
    received: list[bytes]
    protected_before: dict[str, str]
    protected_after: dict[str, str]
    out: Path
    survivors: str
    planted: list[str]


@pytest.fixture(scope="module")
def corpus_course(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    from mlcraft.classroom.grading.release import release

    tmp_path = tmp_path_factory.mktemp("corpus")
    root = tmp_path / "course"
    source = root / "solutions" / MODULE
    source.mkdir(parents=True)
    shutil.copy(REPO / "nbgrader_config.py", root / "nbgrader_config.py")
    shutil.copy(REPO / "solutions" / "jupytext.toml", root / "solutions" / "jupytext.toml")
    (source / f"{MODULE}.py").write_text(SOURCE, encoding="utf-8")
    jupytext.write(jupytext.reads(SOURCE, fmt="py:percent"), source / f"{MODULE}.ipynb")
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("MLCRAFT_GRADING_DIR", str(tmp_path / "grading"))
        monkeypatch.delenv("MLCRAFT_COURSE_ROOT", raising=False)
        release(root, [MODULE])
        yield root


def write_classroom(course: Path, classroom: Path, out: Path, kinds: list[Kind], port: int) -> None:
    """Every kind's submission, built from the course's release."""
    release = nbformat.read(course / "exercises" / MODULE / f"{MODULE}.ipynb", as_version=4)
    values = {**_places(course, classroom, out), "port": str(port), "marker": MARKER, "secret": SECRET_ENV[1]}
    for kind in kinds:
        build(kind, release, classroom / kind.name / MODULE, values)


def _places(course: Path, classroom: Path, out: Path) -> dict[str, str]:
    """The folders a case may name: ``{course}``, ``{site}`` (site-packages), ``{prefix}``..."""
    import sysconfig

    return {
        "course": str(course),
        "out": str(out),
        "classroom": str(classroom),
        "site": sysconfig.get_paths()["purelib"],
        "prefix": sys.prefix,
        "host_tmp": tempfile.gettempdir(),
    }


def planted_files(places: dict[str, str]) -> list[str]:
    """Marker files a submission managed to write outside its sandbox (cases write only there)."""
    found = [Path(p) / f"{MARKER}{suffix}" for p in places.values() for suffix in ("", ".pth")]
    return sorted(str(p) for p in found if p.exists())


def surviving_daemons() -> str:
    listing = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=False).stdout
    return "\n".join(line for line in listing.splitlines() if "4242.25" in line and "ps -eo" not in line)


@pytest.fixture(scope="module")
def graded(corpus_course: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Graded]:
    tmp_path = tmp_path_factory.mktemp("corpus-run")
    classroom, out = tmp_path / "class", tmp_path / "out"
    listener = _Listener()
    try:
        write_classroom(corpus_course, classroom, out, KINDS, listener.port)
        honest = classroom / "honest_correct" / MODULE / f"{MODULE}.ipynb"
        before = _digest([honest])
        with pytest.MonkeyPatch.context() as monkeypatch:
            monkeypatch.setenv(*SECRET_ENV)
            results = grade_classroom(classroom, corpus_course, out, [MODULE], SETTINGS)
        gradebooks = sorted(out.rglob("gradebook.db"))
        after = _digest([honest])
        # Every gradebook must still be a SQLite database (the hostile submission wrote '0wned').
        for path in gradebooks:
            assert path.read_bytes()[:16] == b"SQLite format 3\x00", f"{path} was overwritten"
    finally:
        listener.close()
    yield Graded(
        {r.student: r for r in results},
        bool(sandbox_status(SETTINGS.sandbox)[0]),
        listener.received,
        before,
        after,
        out,
        surviving_daemons(),
        planted_files(_places(corpus_course, classroom, out)),
    )


def test_the_corpus_has_at_least_twenty_hostile_kinds() -> None:
    hostile = [k for k in KINDS if not k.name.startswith("honest")]
    assert len(hostile) >= 20, [k.name for k in hostile]


@pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])
def test_kind(graded: Graded, kind: Kind) -> None:
    if kind.needs_sandbox and not graded.sandboxed:
        pytest.skip("needs the bubblewrap sandbox (apt-get install bubblewrap)")
    result = graded.results[kind.name]
    summary = (
        f"{kind.description}\n{result.status.value} {result.score:g} {result.cells} {result.flags} {result.detail}"
    )
    assert result.status is kind.status, summary
    assert result.score == kind.score, summary
    if result.status in (Status.MISSING, Status.INVALID):
        assert result.detail, summary  # never a silent 0
    for cell, points in kind.cells.items():
        assert result.cells[cell][0] == points, summary
    for flag in kind.flags:
        assert any(flag in f for f in result.flags), f"no flag containing {flag!r}: {summary}"
    assert kind.detail in result.detail, summary


def test_honest_submissions_keep_exact_scores(graded: Graded) -> None:
    expected = {"honest_correct": 5.0, "honest_partial": 3.0, "honest_blank": 0.0}
    assert {s: graded.results[s].score for s in expected} == expected
    assert all(graded.results[s].max_score == 5.0 for s in expected)


def test_no_process_outlives_grading(graded: Graded) -> None:
    if not graded.sandboxed:
        pytest.skip("needs the bubblewrap sandbox")
    assert graded.survivors == "", f"a submission's daemon is still running:\n{graded.survivors}"


def test_nothing_reached_the_network(graded: Graded) -> None:
    if not graded.sandboxed:
        pytest.skip("needs the bubblewrap sandbox")
    assert graded.received == []


def test_other_submissions_are_untouched(graded: Graded) -> None:
    assert graded.protected_after == graded.protected_before


def test_nothing_was_planted_outside_the_sandbox(graded: Graded) -> None:
    if not graded.sandboxed:
        pytest.skip("needs the bubblewrap sandbox")
    assert graded.planted == []


@pytest.mark.parametrize("student", ["print_20mb_line", "update_display_flood", "output_in_many_cells"])
def test_output_is_capped_in_the_graded_notebook(graded: Graded, student: str) -> None:
    autograded = graded.out / "work" / MODULE / student / "autograded" / student / MODULE
    size = (autograded / f"{MODULE}.ipynb").stat().st_size
    cap = SETTINGS.max_notebook_output_mb * 2**20 if student == "output_in_many_cells" else SETTINGS.max_output_bytes
    assert size < 2 * cap, f"autograded notebook is {size} bytes"


_BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def _titles_in_chromium(pages: list[Path]) -> list[str]:
    """Each page's title and address once loaded in headless Chromium (a script sets the title
    to 'PWNED-...', a meta refresh moves the address)."""
    playwright = pytest.importorskip("playwright.sync_api")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    titles = []
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium, args=_BROWSER_ARGS)
        try:
            page = browser.new_page()
            for path in pages:
                page.goto(path.as_uri(), wait_until="load")
                page.wait_for_timeout(1000)  # let any timer, onerror handler or refresh fire
                titles.append(f"{page.title()} @ {page.url}")
        finally:
            browser.close()
    return titles


def test_feedback_pages_run_no_script_in_a_real_browser(graded: Graded, tmp_path: Path) -> None:
    feedback = Path(graded.results["feedback_script"].feedback)
    assert feedback.is_file(), graded.results["feedback_script"]
    html = feedback.read_text(encoding="utf-8")
    assert 'http-equiv="Content-Security-Policy"' in html and "script-src 'none'" in html
    # The check can fail: the same hostile script in a page of our own runs.
    control = tmp_path / "control.html"
    control.write_text(
        "<html><head><title>t</title></head><body><script>document.title='PWNED-control'</script>", encoding="utf-8"
    )
    honest = Path(graded.results["honest_correct"].feedback)
    control_title, feedback_title, honest_title = _titles_in_chromium([control, feedback, honest])
    assert control_title.startswith("PWNED-control @ file:"), "the browser check must see a script that runs"
    assert feedback_title.endswith(feedback.as_uri()), f"the feedback page navigated away: {feedback_title}"
    assert "PWNED" not in feedback_title, f"a submission's script ran in the feedback page: {feedback_title}"
    assert "PWNED" not in honest_title
    # What was dropped says so, and the learner's text is still there, as text.
    assert "output not shown in feedback" in html and "PWNED-stream" in html
