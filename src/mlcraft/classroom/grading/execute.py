"""nbgrader preprocessors that decide every verdict outside the student's kernel.

- :class:`GuardedExecute` replaces nbgrader's ``Execute``. It starts the kernel through
  :class:`~mlcraft.classroom.grading.sandbox.SandboxKernelManager` (sandbox and resource limits) and runs
  the learner's cells there, but runs every autograded **test cell** in a
  :class:`~mlcraft.classroom.grading.judge.Judge`, in this process: the kernel only answers the judge's
  requests with data (:mod:`mlcraft.classroom.grading.protocol`), so nothing the submission does in its
  kernel (IPython hooks, patched kernel methods, replaced library functions, lying objects)
  can turn a failing test into a pass. The instructor's locked cells (imports) run in both:
  in the judge before anything else, wherever the submission moved them.
  Besides:

  - when the kernel dies (``os._exit``, a segfault, ``exit()``, a memory bomb that aborts), the
    cell is recorded as crashed, a fresh kernel is started, the learner's cells before it are
    replayed (outputs discarded, crashed cells skipped) and grading goes on;
  - when a cell times out and the kernel does not answer an interrupt within ``kill_grace_s``
    (a loop that ignores ``SIGINT``), it is killed the same way;
  - at the submission's wall-clock ``deadline`` every cell left gets an error output, so a test
    that never ran can never score, and cells that finished keep their points;
  - at most ``max_output_bytes`` of output are kept per cell and ``max_notebook_output_bytes``
    for the whole notebook, for every message type (display updates are dropped); errors are
    always kept, capped;
  - cell tags (``skip-execution``, ``raises-exception``) are ignored.

  Each finished test cell is reported at once through ``on_event`` (see
  :mod:`mlcraft.classroom.grading.worker`), so a grading process killed at its hard limit loses nothing
  that was decided.
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
from queue import Empty
from typing import Any

import zmq
import zmq.asyncio
from jupyter_core.utils import run_sync
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat import NotebookNode
from nbgrader.preprocessors import Execute, NbGraderPreprocessor, SaveAutoGrades
from nbgrader.utils import determine_grade, is_grade, is_locked, is_solution
from traitlets import Any as AnyTrait
from traitlets import Float, Integer

from mlcraft.classroom.grading.judge import Judge, KernelGone, KernelTimeout, format_failure
from mlcraft.classroom.grading.protocol import REPLY_TYPE, REQUEST_TYPE
from mlcraft.classroom.grading.sandbox import SandboxKernelManager
from mlcraft.classroom.grading.static import LearnerSource

__all__ = [
    "DeduplicateCells",
    "GuardedExecute",
    "HonestSaveAutoGrades",
    "SanitizeCells",
    "honest_grade",
    "is_test_cell",
]

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


def is_test_cell(cell: Any) -> bool:
    """An autograded test cell: graded code that is not an answer."""
    return bool(cell.cell_type == "code" and is_grade(cell) and not is_solution(cell))


def _is_setup_cell(cell: Any) -> bool:
    """An instructor cell the tests also need (imports, constants): locked code, not graded."""
    return bool(cell.cell_type == "code" and is_locked(cell) and not is_grade(cell) and not is_solution(cell))


def _learner_source(nb: NotebookNode) -> LearnerSource:
    cells = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and not is_test_cell(cell) and not _is_setup_cell(cell):
            label = cell.metadata.get("nbgrader", {}).get("grade_id") or f"cell {index}"
            cells.append((str(label), cell.source))
    return LearnerSource(cells)


def _error_output(ename: str, evalue: str, traceback: list[str] | None = None) -> NotebookNode:
    return NotebookNode(output_type="error", ename=ename, evalue=evalue, traceback=traceback or [f"{ename}: {evalue}"])


def _message_bytes(msg: dict[str, Any]) -> int:
    content = msg.get("content", {})
    if msg.get("msg_type") == "stream":
        return len(str(content.get("text", "")).encode("utf-8", "replace"))
    data = content.get("data", {}) or {}
    return sum(
        len(json.dumps(v)) if not isinstance(v, str) else len(v.encode("utf-8", "replace")) for v in data.values()
    )


class GuardedExecute(Execute):  # type: ignore[misc]  # nbgrader is untyped
    """nbgrader's ``Execute`` with test cells judged outside the kernel, crash recovery, hard
    timeouts and output caps."""

    max_output_bytes = Integer(1_000_000, help="output kept per cell, in bytes").tag(config=True)
    max_notebook_output_bytes = Integer(16 * 2**20, help="output kept for the whole notebook, in bytes").tag(
        config=True
    )
    deadline = Float(0.0, help="wall-clock time (time.time()) when execution stops; 0: none").tag(config=True)
    kill_grace_s = Integer(5, help="seconds a timed-out kernel has to answer before it is killed").tag(config=True)
    on_event = AnyTrait(None, help="callable(dict): told of each event and each decided test cell").tag(config=True)

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("kernel_manager_class", SandboxKernelManager)
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
        self._notebook_cut = False
        self._cell_end = 0.0  # time.monotonic() when the running cell's time is up
        self._cell_index = -1
        self._managers: list[Any] = []
        self.judge: Judge | None = None

    # --- nbclient hooks -------------------------------------------------------------------
    def create_kernel_manager(self) -> Any:
        km = super().create_kernel_manager()
        # Files the assignment ships beside the notebook (nbgrader copied them there).
        km.data_folder = str(Path(self.resources.get("metadata", {}).get("path") or ".").resolve())
        self._managers.append(km)
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

    def _update_display_id(self, display_id: str, msg: dict[str, Any]) -> None:
        """Display updates are dropped: they would replace earlier outputs past the cap."""

    def _admit(self, cell_index: int, size: int) -> tuple[int, bool]:
        """``(bytes to keep, add the cut note)`` for ``size`` new output bytes of a cell, within
        the cell's cap and the notebook's."""
        used = self._output_bytes.get(cell_index, 0)
        if used > self.max_output_bytes:
            return 0, False  # already cut
        total = sum(min(v, self.max_output_bytes) for v in self._output_bytes.values())
        room = min(self.max_output_bytes - used, max(0, self.max_notebook_output_bytes - total))
        if size <= room:
            self._output_bytes[cell_index] = used + size
            return size, False
        self._output_bytes[cell_index] = self.max_output_bytes + 1
        if room == self.max_output_bytes - used:
            self._record(cell_index, "output", f"output over {self.max_output_bytes} bytes was cut")
        elif not self._notebook_cut:  # said once: every later cell is cut too
            self._notebook_cut = True
            self._record(
                cell_index, "output", f"the notebook's output went over {self.max_notebook_output_bytes} bytes"
            )
        return room, True

    def _cut_note(self) -> NotebookNode:
        return NotebookNode(
            output_type="stream",
            name="stdout",
            text=f"\n[output of this cell cut at {self.max_output_bytes} bytes by the grader]\n",
        )

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
        size = _message_bytes(msg)
        keep, note = self._admit(cell_index, size)
        if keep == size:
            return super().output(outs, msg, None, cell_index)  # no display id: nothing to update later
        if msg.get("msg_type") == "stream" and keep:
            text = str(msg["content"].get("text", "")).encode("utf-8", "replace")[:keep].decode("utf-8", "ignore")
            outs.append(NotebookNode(output_type="stream", name=msg["content"].get("name", "stdout"), text=text))
        if note:
            outs.append(self._cut_note())
        return None

    def _add_text(self, cell: NotebookNode, index: int, name: str, text: str) -> None:
        """Append text to a test cell's outputs (the test's prints, the learner's), capped."""
        data = text.encode("utf-8", "replace")
        keep, note = self._admit(index, len(data))
        text = text if keep == len(data) else data[:keep].decode("utf-8", "ignore")
        name = "stderr" if name == "stderr" else "stdout"
        outputs = cell.setdefault("outputs", [])
        if text and outputs and outputs[-1].get("output_type") == "stream" and outputs[-1].get("name") == name:
            outputs[-1]["text"] += text
        elif text:
            outputs.append(NotebookNode(output_type="stream", name=name, text=text))
        if note:
            outputs.append(self._cut_note())

    # --- the execution loop ---------------------------------------------------------------
    def preprocess(self, nb: NotebookNode, resources: Any = None, km: Any = None) -> tuple[NotebookNode, Any]:
        from nbclient import NotebookClient

        NotebookClient.__init__(self, nb, km)
        self.reset_execution_trackers()
        self._check_assign_resources(resources)
        self.events, self._output_bytes, self._notebook_cut = [], {}, False
        self.judge = Judge(self, _learner_source(self.nb))
        # The instructor's locked cells (imports, constants) define what the tests use: they run
        # in the judge first, wherever the submission put them.
        for index, cell in enumerate(self.nb.cells):
            if _is_setup_cell(cell):
                problem = self.judge.run_setup_cell(cell.source, self._label(index))
                if problem:
                    self._record(index, "setup", f"the grader could not run this cell: {problem}")
        failed: set[int] = set()
        start: int | None = 0
        try:
            while start is not None and start < len(self.nb.cells):
                start = self._run_from(start, failed)
        finally:
            for manager in self._managers:  # a kernel that died leaves its folder behind
                if hasattr(manager, "discard"):
                    manager.discard()
        self.set_widgets_metadata()
        return self.nb, self.resources

    def _label(self, index: int) -> str:
        grade_id = self.nb.cells[index].metadata.get("nbgrader", {}).get("grade_id")
        return str(grade_id) if grade_id else f"cell {index}"

    def _emit(self, event: dict[str, Any]) -> None:
        if callable(self.on_event):
            self.on_event(event)

    def _record(self, index: int, kind: str, detail: str) -> None:
        event = {"cell": self._label(index), "index": index, "kind": kind, "detail": detail}
        if event not in self.events:
            self.events.append(event)
            self._emit({"event": "flag", **event})

    def _decided(self, index: int) -> None:
        cell = self.nb.cells[index]
        points, max_points = honest_grade(cell)
        self._emit({"event": "cell", "cell": self._label(index), "points": points, "max_points": max_points})

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
            if is_test_cell(cell):
                self._decided(index)

    def _run_from(self, start: int, failed: set[int]) -> int | None:
        """Run cells from ``start`` in a fresh kernel; the index to restart from, or None when done."""
        with self.setup_kernel():
            assert self.kc is not None
            info = self.wait_for_reply(self.kc.kernel_info())
            if info is not None:
                self.nb.metadata["language_info"] = info["content"]["language_info"]
            for index in range(start):  # replay the learner's cells in the fresh kernel, outputs discarded
                cell = self.nb.cells[index]
                if index in failed or cell.cell_type != "code" or is_test_cell(cell):
                    continue
                if self._out_of_time():
                    self._abandon(start, "the submission's time limit was reached", "timeout")
                    return None
                try:
                    self._execute_in_kernel(copy.deepcopy(cell), index)
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
                except (CellTimeoutError, KernelGone) as err:
                    kind = err.kind if isinstance(err, KernelGone) else "timeout"
                    if kind == "timeout":
                        reason = f"the cell ran longer than {self.timeout} s and ignored the interrupt; the kernel was killed"
                    else:
                        reason = f"the kernel died in this cell ({err}); later cells ran in a fresh kernel"
                    cell.outputs = [*cell.get("outputs", []), _error_output("KernelDied", reason)]
                    self._record(index, kind, reason)
                    if is_test_cell(cell):
                        self._decided(index)
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
        if is_test_cell(cell):
            self._judge_cell(cell, index)
            return
        self._execute_in_kernel(cell, index)

    def _execute_in_kernel(self, cell: NotebookNode, index: int) -> None:
        self._timed_out = False
        self.execute_cell(cell, index, store_history=True)

    def _judge_cell(self, cell: NotebookNode, index: int) -> None:
        """Run a test cell in the judge; the kernel is reached only through :meth:`request`."""
        assert self.judge is not None
        self._timed_out = False
        cell.outputs = []
        cell.execution_count = None
        timeout = self._get_timeout(cell)
        self._cell_end = time.monotonic() + (timeout if timeout is not None else 1e9)
        self._cell_index = index
        label = self._label(index)
        try:
            err = self.judge.run_test_cell(
                cell.source, label, lambda name, text: self._add_text(cell, index, name, text)
            )
        finally:
            self._cell_index = -1
        if err is not None:
            ename, evalue, trace = format_failure(err, label)
            cell.outputs.append(_error_output(ename, evalue, trace))
            if isinstance(err, KernelTimeout):
                self._record(index, "timeout", str(err))
            elif isinstance(err, MemoryError):
                self._record(index, "memory", "MemoryError: the learner's code went over the memory limit")
        self._decided(index)

    # --- the judge's channel to the kernel ------------------------------------------------
    def request(self, content: dict[str, Any], buffers: list[bytes]) -> tuple[dict[str, Any], list[Any]]:
        """Send one request to the kernel; its reply ``(content, buffers)``.

        Raises:
            KernelTimeout: the learner's code ran past the cell's time; it was interrupted.
            KernelGone: the kernel died, or did not answer the interrupt (it is restarted).
        """
        result: tuple[dict[str, Any], list[Any]] = run_sync(self._async_request)(content, buffers)
        return result

    async def _async_request(self, content: dict[str, Any], buffers: list[bytes]) -> tuple[dict[str, Any], list[Any]]:
        assert self.kc is not None and self.km is not None
        kc, index = self.kc, self._cell_index
        cell = self.nb.cells[index] if index >= 0 else None
        msg = kc.session.msg(REQUEST_TYPE, content)
        msg["buffers"] = buffers
        msg_id = msg["header"]["msg_id"]
        kc.shell_channel.send(msg)
        poller = zmq.asyncio.Poller()
        poller.register(kc.shell_channel.socket, zmq.POLLIN)
        poller.register(kc.iopub_channel.socket, zmq.POLLIN)
        end, interrupted = self._cell_end, False
        reply: dict[str, Any] | None = None
        idle, settle = False, 0.0
        while reply is None or not (idle or time.monotonic() >= settle):
            now = time.monotonic()
            if reply is None and now >= end:
                if interrupted:
                    raise KernelGone("timeout", "the learner's code did not stop after an interrupt")
                await self.km.interrupt_kernel()
                interrupted, end = True, now + self.kill_grace_s
                continue
            wait = (settle if reply is not None else end) - now
            events = dict(await poller.poll(timeout=max(1, int(min(wait, 1.0) * 1000))))
            if not events:
                if reply is None and not await self.km.is_alive():
                    raise KernelGone("crashed", "the kernel died while running the learner's code")
                continue
            try:
                if kc.iopub_channel.socket in events:
                    while True:
                        try:
                            message = await kc.iopub_channel.get_msg(timeout=0)
                        except Empty:
                            break
                        if message.get("parent_header", {}).get("msg_id") != msg_id:
                            continue
                        if message["msg_type"] == "status" and message["content"].get("execution_state") == "idle":
                            idle = True
                        elif cell is not None:
                            self._kernel_output(cell, index, message)
                if kc.shell_channel.socket in events and reply is None:
                    message = await kc.shell_channel.get_msg(timeout=0)
                    if message.get("parent_header", {}).get("msg_id") == msg_id and message["msg_type"] == REPLY_TYPE:
                        reply = message
                        settle = time.monotonic() + 1.0  # the last outputs come before the idle status
            except Empty:
                continue
            except Exception as err:  # a message the grader cannot read: the channel is not to be trusted
                raise KernelGone("crashed", f"the kernel sent an unreadable message ({type(err).__name__})") from None
        if interrupted:
            raise KernelTimeout(f"the learner's code ran longer than the cell's {self.timeout} s and was interrupted")
        reply_content = reply["content"] if isinstance(reply.get("content"), dict) else {}
        return reply_content, list(reply.get("buffers") or [])

    def _kernel_output(self, cell: NotebookNode, index: int, message: dict[str, Any]) -> None:
        """Output of the learner's code during a request, as plain text in the test cell."""
        kind, content = message.get("msg_type"), message.get("content") or {}
        if kind == "stream":
            self._add_text(cell, index, str(content.get("name")), str(content.get("text", "")))
        elif kind in ("display_data", "execute_result"):
            text = (content.get("data") or {}).get("text/plain", "")
            self._add_text(cell, index, "stdout", f"{str(text)[:10_000]}\n")
        elif kind == "error":
            self._add_text(cell, index, "stderr", f"{content.get('ename')}: {str(content.get('evalue'))[:4096]}\n")

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
