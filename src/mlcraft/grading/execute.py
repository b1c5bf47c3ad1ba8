"""nbgrader preprocessors that make one hostile cell cost only the cells it affects.

- :class:`GuardedExecute` replaces nbgrader's ``Execute``. It starts the kernel through
  :class:`~mlcraft.grading.sandbox.SandboxKernelManager` (sandbox and resource limits) and:

  - when the kernel dies in a cell (``os._exit``, a segfault, ``exit()``, a memory bomb that
    aborts), records the cell as crashed, starts a fresh kernel, replays the cells before it
    (outputs discarded, crashed cells skipped) and goes on with the next cell;
  - when a cell times out and the kernel does not answer an interrupt within ``kill_grace_s``
    (a loop that ignores ``SIGINT``), kills it the same way; an interruptible loop is simply
    interrupted and the kernel keeps its state;
  - stops at the submission's wall-clock ``deadline``: every cell left gets an error output, so
    a test that never ran can never score;
  - keeps at most ``max_output_bytes`` of output per cell (bytes, not lines; errors always
    kept), so 20 MB printed on one line cannot bloat the notebook, the gradebook or feedback;
  - before each graded cell, silently restores the functions tests rely on
    (:func:`mlcraft.testing.guard.restore`);
  - ignores cell tags (``skip-execution``, ``raises-exception``): students cannot opt a test
    out of running.

  What happened is written to ``events_path`` (JSON) for the grading report.
- :class:`DeduplicateCells` replaces nbgrader's ``DeduplicateIds`` (which crashes on a
  duplicated graded cell).
- :class:`SanitizeCells` (after nbgrader's ``OverwriteCells``) drops every cell's metadata but
  nbgrader's: tags and other keys cannot change how a cell runs.
- :class:`HonestSaveAutoGrades` scores a test cell by one rule, :func:`honest_grade`: full
  points when it ran without an error, else 0. Output on stderr (warnings) does not cost
  points, and a number the cell displays is not taken as partial credit.
"""

from __future__ import annotations

import copy
import json
import secrets
import time
from pathlib import Path
from typing import Any

from jupyter_core.utils import run_sync
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat import NotebookNode
from nbgrader.preprocessors import Execute, NbGraderPreprocessor, SaveAutoGrades
from nbgrader.utils import determine_grade, is_grade, is_solution
from traitlets import Float, Integer, Unicode

from mlcraft.grading.sandbox import SandboxKernelManager

__all__ = ["DeduplicateCells", "GuardedExecute", "HonestSaveAutoGrades", "SanitizeCells", "honest_grade"]

_GUARD = "__import__('mlcraft.testing.guard').testing.guard.restore(globals())"
_ERROR_BYTES = 64 * 1024  # an error's traceback is kept, capped


def honest_grade(cell: Any) -> tuple[float | None, float]:
    """``(points, max_points)`` of a graded cell: a code test cell scores full points when its
    outputs hold no error, else 0; stderr and displayed numbers do not matter. Manually graded
    answers keep nbgrader's rule (``None``: needs a grader; 0 when left blank).
    """
    if not is_grade(cell):
        raise ValueError(f"cell {cell.metadata.get('nbgrader', {}).get('grade_id', '?')} is not a graded cell")
    max_points = float(cell.metadata["nbgrader"]["points"])
    if is_solution(cell) or cell.cell_type != "code":
        points, _ = determine_grade(cell)
        return (None if points is None else float(points)), max_points
    failed = any(output.get("output_type") == "error" for output in cell.get("outputs", []))
    return (0.0 if failed else max_points), max_points


def _error_output(ename: str, evalue: str) -> NotebookNode:
    return NotebookNode(output_type="error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


def _message_bytes(msg: dict[str, Any]) -> int:
    content = msg.get("content", {})
    if msg.get("msg_type") == "stream":
        return len(str(content.get("text", "")).encode("utf-8", "replace"))
    data = content.get("data", {}) or {}
    return sum(
        len(json.dumps(v)) if not isinstance(v, str) else len(v.encode("utf-8", "replace")) for v in data.values()
    )


class GuardedExecute(Execute):  # type: ignore[misc]  # nbgrader is untyped
    """nbgrader's ``Execute`` with crash recovery, hard timeouts, output caps and the guard."""

    max_output_bytes = Integer(1_000_000, help="output kept per cell, in bytes").tag(config=True)
    deadline = Float(0.0, help="wall-clock time (time.time()) when execution stops; 0: none").tag(config=True)
    kill_grace_s = Integer(5, help="seconds a timed-out kernel has to answer before it is killed").tag(config=True)
    events_path = Unicode("", help="where to write what happened (JSON list)").tag(config=True)

    def __init__(self, **kwargs: Any) -> None:
        kwargs["kernel_manager_class"] = SandboxKernelManager
        super().__init__(**kwargs)
        self.shutdown_kernel = "immediate"
        # A loaded machine may deliver a cell's last outputs late; never fail a cell for that
        # (an error still counts: nbgrader adds it from the execute reply).
        self.raise_on_iopub_timeout = False
        # No tag can make a cell skip execution: the skip tag is a secret per run.
        self.skip_cells_with_tag = f"mlcraft-never-{secrets.token_hex(16)}"
        self.events: list[dict[str, Any]] = []
        self._timed_out = False
        self._output_bytes: dict[int, int] = {}

    # --- nbclient hooks -------------------------------------------------------------------
    def create_kernel_manager(self) -> Any:
        km = super().create_kernel_manager()
        km.scratch = str(Path(self.resources.get("metadata", {}).get("path") or ".").resolve())
        return km

    def _get_timeout(self, cell: NotebookNode | None) -> int | None:
        """The cell timeout, cut to what is left of the submission's time."""
        timeout: int | None = super()._get_timeout(cell)
        if self.deadline:
            left = max(1, int(self.deadline - time.time()) + 1)
            timeout = left if timeout is None else min(timeout, left)
        return timeout

    async def _async_handle_timeout(self, timeout: int, cell: NotebookNode | None = None) -> Any:
        self._timed_out = True
        return await super()._async_handle_timeout(timeout, cell)

    def output(self, outs: list[Any], msg: dict[str, Any], display_id: str | None, cell_index: int) -> Any:
        if msg.get("msg_type") == "error":
            content = msg["content"]
            content["evalue"] = str(content.get("evalue", ""))[:4096]
            kept, total = [], 0
            for line in reversed(content.get("traceback", [])):
                total += len(line)
                if total > _ERROR_BYTES:
                    break
                kept.append(line)
            content["traceback"] = kept[::-1]
            return super().output(outs, msg, display_id, cell_index)
        used = self._output_bytes.get(cell_index, 0)
        if used >= self.max_output_bytes:
            return None
        size = _message_bytes(msg)
        if used + size <= self.max_output_bytes:
            self._output_bytes[cell_index] = used + size
            return super().output(outs, msg, display_id, cell_index)
        self._output_bytes[cell_index] = self.max_output_bytes
        if msg.get("msg_type") == "stream":
            text = str(msg["content"].get("text", ""))
            room = self.max_output_bytes - used
            kept_text = text.encode("utf-8", "replace")[:room].decode("utf-8", "ignore")
            outs.append(NotebookNode(output_type="stream", name=msg["content"].get("name", "stdout"), text=kept_text))
        outs.append(
            NotebookNode(
                output_type="stream",
                name="stdout",
                text=f"\n[output of this cell cut at {self.max_output_bytes} bytes by the grader]\n",
            )
        )
        self._record(cell_index, "output", f"output over {self.max_output_bytes} bytes was cut")
        return None

    # --- the execution loop ---------------------------------------------------------------
    def preprocess(self, nb: NotebookNode, resources: Any = None, km: Any = None) -> tuple[NotebookNode, Any]:
        from nbclient import NotebookClient

        NotebookClient.__init__(self, nb, km)
        self.reset_execution_trackers()
        self._check_assign_resources(resources)
        self.events, self._output_bytes = [], {}
        failed: set[int] = set()
        start: int | None = 0
        while start is not None and start < len(self.nb.cells):
            start = self._run_from(start, failed)
        self.set_widgets_metadata()
        if self.events_path:
            Path(self.events_path).write_text(json.dumps(self.events, indent=1), encoding="utf-8")
        return self.nb, self.resources

    def _label(self, index: int) -> str:
        grade_id = self.nb.cells[index].metadata.get("nbgrader", {}).get("grade_id")
        return str(grade_id) if grade_id else f"cell {index}"

    def _record(self, index: int, kind: str, detail: str) -> None:
        event = {"cell": self._label(index), "index": index, "kind": kind, "detail": detail}
        if event not in self.events:
            self.events.append(event)

    def _out_of_time(self) -> bool:
        return bool(self.deadline) and time.time() >= self.deadline

    def _abandon(self, start: int, reason: str, kind: str) -> None:
        """Give every code cell from ``start`` on an error: it did not run, so it cannot score."""
        first = True
        for index in range(start, len(self.nb.cells)):
            cell = self.nb.cells[index]
            if cell.cell_type != "code" or not cell.source.strip():
                continue
            cell.outputs = [_error_output("NotRun", reason)]
            if first:
                self._record(index, kind, reason)
                first = False

    def _run_from(self, start: int, failed: set[int]) -> int | None:
        """Run cells from ``start`` in a fresh kernel; the index to restart from, or None when done."""
        with self.setup_kernel():
            assert self.kc is not None
            info = self.wait_for_reply(self.kc.kernel_info())
            if info is not None:
                self.nb.metadata["language_info"] = info["content"]["language_info"]
            for index in range(start):  # replay in the fresh kernel, outputs discarded
                cell = self.nb.cells[index]
                if index in failed or cell.cell_type != "code":
                    continue
                if self._out_of_time():
                    self._abandon(start, "the submission's time limit was reached", "timeout")
                    return None
                try:
                    self._execute(copy.deepcopy(cell), index)
                except (DeadKernelError, CellTimeoutError):
                    self._abandon(start, f"the kernel died again while replaying cell {index}", "crashed")
                    return None
            for index in range(start, len(self.nb.cells)):
                if self._out_of_time():
                    self._abandon(index, "the submission's time limit was reached", "timeout")
                    return None
                cell = self.nb.cells[index]
                try:
                    self._execute(cell, index)
                except CellTimeoutError:  # no answer after the interrupt: the kernel ignores SIGINT
                    reason = (
                        f"the cell ran longer than {self.timeout} s and ignored the interrupt; the kernel was killed"
                    )
                    cell.outputs = [*cell.get("outputs", []), _error_output("CellTimeoutError", reason)]
                    self._record(index, "timeout", reason)
                    failed.add(index)
                    return index + 1
                except DeadKernelError:
                    reason = "the kernel died in this cell (crash, exit or memory); later cells ran in a fresh kernel"
                    cell.outputs = [*cell.get("outputs", []), _error_output("KernelDied", reason)]
                    self._record(index, "crashed", reason)
                    failed.add(index)
                    return index + 1
                if any(o.get("ename") == "MemoryError" for o in cell.get("outputs", [])):
                    self._record(index, "memory", "MemoryError: the cell went over the memory limit")
                if self._timed_out:
                    self._record(index, "timeout", f"the cell ran longer than {self.timeout} s")
                    if not run_sync(self._async_responds)():
                        failed.add(index)
                        return index + 1
        return None

    def _execute(self, cell: NotebookNode, index: int) -> None:
        self._timed_out = False
        if cell.cell_type == "code" and is_grade(cell) and cell.source.strip():
            run_sync(self._async_silent)(_GUARD, float(self.timeout or 60))
        self.execute_cell(cell, index, store_history=True)

    async def _async_silent(self, code: str, timeout: float) -> bool:
        """Run ``code`` silently; True when the kernel replied within ``timeout`` seconds."""
        assert self.kc is not None
        msg_id = self.kc.execute(code, silent=True, store_history=False)
        end = time.monotonic() + timeout
        while (left := end - time.monotonic()) > 0:
            try:
                msg = await self.kc.shell_channel.get_msg(timeout=left)
            except Exception:  # queue.Empty: no reply in time
                return False
            if msg["parent_header"].get("msg_id") == msg_id:
                return True
        return False

    async def _async_responds(self) -> bool:
        return await self._async_silent("pass", float(self.kill_grace_s))


class DeduplicateCells(NbGraderPreprocessor):  # type: ignore[misc]
    """Keep the first cell of each grade id; later copies lose their nbgrader metadata.

    Replaces nbgrader's ``DeduplicateIds``, which leaves the copies' metadata without a grade id
    and makes ``OverwriteCells`` fail (a student could stop their notebook from being graded).
    """

    def preprocess(self, nb: NotebookNode, resources: Any) -> tuple[NotebookNode, Any]:
        seen: set[str] = set()
        for cell in nb.cells:
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
            if grade_id is None:
                continue
            if grade_id in seen:
                del cell.metadata["nbgrader"]
            seen.add(grade_id)
        return nb, resources


class SanitizeCells(NbGraderPreprocessor):  # type: ignore[misc]
    """Keep only nbgrader's metadata on each cell (tags cannot change how a cell runs)."""

    def preprocess_cell(self, cell: NotebookNode, resources: Any, index: int) -> tuple[NotebookNode, Any]:
        keep = {k: cell.metadata[k] for k in ("nbgrader", "deletable", "editable") if k in cell.metadata}
        cell.metadata = NotebookNode(keep)
        return cell, resources


class HonestSaveAutoGrades(SaveAutoGrades):  # type: ignore[misc]
    """nbgrader's ``SaveAutoGrades`` scoring with :func:`honest_grade`."""

    def _add_score(self, cell: NotebookNode, resources: Any) -> None:
        grade = self.gradebook.find_grade(
            cell.metadata["nbgrader"]["grade_id"], self.notebook_id, self.assignment_id, self.student_id
        )
        grade.auto_score, _ = honest_grade(cell)
        grade.needs_manual_grade = grade.manual_score is not None or grade.auto_score is None
        self.gradebook.db.commit()
