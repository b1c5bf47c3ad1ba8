"""``mlcraft mutate``: do an assignment's tests catch mistakes nobody wrote down?

The reference solution's answer cells are mutated (:mod:`mlcraft.classroom.grading.mutation_ops`: one
small change each, a flipped comparison, a dropped ``dim=``, a removed ``raise``...) and every
visible and hidden test of the assignment is run against each mutant. A mutant is

- **killed** when a test cell fails (the first one is recorded);
- **timeout** when a cell ran past its budget (10 x its time on the reference, at least 10 s);
- **crashed** when the kernel died;
- **survived** when every test passed. A survivor is either a hole in the tests or a mutant
  that behaves exactly like the reference (an *equivalent* mutant). Equivalent mutants are
  listed, each with a one-line reason, in ``tests/assignments/<id>/equivalent_mutants.toml``;
  any other survivor fails the command, and so does a listed mutant that is killed or no
  longer generated (the list must stay true).

Tests run the way ``mlcraft grade`` runs them (:class:`~mlcraft.classroom.grading.execute.GuardedExecute`:
the answer cells in a kernel, each test cell in the grader's judge), without the sandbox,
since the code is the instructor's own. Each worker process (one per core) runs the notebook
once, then for each mutant runs only the mutated cell, the learner cells after it and the
tests after it (stopping at the first failure), and runs the reference cells again to put the
kernel back. The names the mutated cell binds are removed from the kernel first, so a mutant
whose cell raises is tested as a fresh kernel would test it, not against the reference's
functions. A kernel that died or hung is replaced and the notebook run again.
"""

from __future__ import annotations

import ast
import functools
import math
import multiprocessing as mp
import os
import queue
import time
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from jupyter_core.utils import run_sync
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat import NotebookNode
from nbgrader.utils import is_solution

from mlcraft.classroom.grading.execute import GuardedExecute, _is_setup_cell, _learner_source, is_test_cell
from mlcraft.classroom.grading.judge import KernelGone
from mlcraft.classroom.grading.mutation_ops import mutants_of
from mlcraft.classroom.grading.notebooks import read_notebook

__all__ = [
    "EQUIVALENTS_FILE",
    "Equivalent",
    "Mutant",
    "MutationError",
    "MutationReport",
    "Outcome",
    "generate_mutants",
    "load_equivalents",
    "run_mutation",
]

EQUIVALENTS_FILE = "equivalent_mutants.toml"
STATUSES = ("killed", "timeout", "crashed", "survived")


class MutationError(RuntimeError):
    """Mutation testing could not run (the reference fails its own tests, a worker died...)."""


@dataclass(frozen=True)
class Mutant:
    """One mutant of one answer cell, or (with ``more`` and ``through``) a variant of several."""

    id: str  # "<grade id>/<operator>/<digest>": stable while the changed line stays the same
    cell: str  # grade id of the answer cell
    index: int  # the cell's position in the notebook
    operator: str
    line: int
    source: str
    diff: str
    change: str
    more: tuple[tuple[int, str], ...] = ()  # further cells replaced, (position, source), after ``index``
    through: int | None = None  # None: stop at the first failing test; else run every cell up to this position


@dataclass(frozen=True)
class Outcome:
    """What the tests did to one mutant."""

    id: str
    status: str  # one of STATUSES
    test: str = ""  # the test cell that failed or timed out
    detail: str = ""  # the first line of its error
    failed: tuple[str, ...] = ()  # every test cell that failed (runs with ``through`` only)


@dataclass(frozen=True)
class Equivalent:
    """A mutant listed as behaving like the reference, with the reason."""

    id: str
    reason: str
    change: str = ""


def generate_mutants(nb: Any, cells: Iterable[str] | None = None) -> list[Mutant]:
    """Every mutant of the notebook's answer cells (only of ``cells``, grade ids, if given)."""
    wanted = set(cells) if cells is not None else None
    found: list[Mutant] = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not is_solution(cell):
            continue
        grade_id = str(cell.metadata["nbgrader"].get("grade_id", f"cell-{index}"))
        if wanted is not None and grade_id not in wanted:
            continue
        for m in mutants_of(cell.source):
            found.append(Mutant(f"{grade_id}/{m.key}", grade_id, index, m.operator, m.line, m.source, m.diff, m.change))
    return found


def load_equivalents(path: Path) -> dict[str, Equivalent]:
    """The equivalent mutants listed in ``path`` (none when it does not exist).

    Raises:
        MutationError: when the file is not valid TOML, or an entry has no id or no reason.
    """
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise MutationError(f"{path}: not valid TOML ({err}); fix the file") from None
    found: dict[str, Equivalent] = {}
    for number, entry in enumerate(data.get("mutant", []), start=1):
        mutant_id, reason = str(entry.get("id", "")).strip(), str(entry.get("reason", "")).strip()
        if not mutant_id or not reason:
            raise MutationError(f"{path}: entry {number} needs both an id and a reason (why it cannot be told apart)")
        found[mutant_id] = Equivalent(mutant_id, reason, str(entry.get("change", "")))
    return found


@dataclass
class MutationReport:
    """The result of mutation testing one assignment."""

    module: str
    mutants: list[Mutant]
    outcomes: dict[str, Outcome]
    equivalents: dict[str, Equivalent]
    seconds: float = 0.0
    workers: int = 1
    cells: list[str] = field(default_factory=list)  # answer cells in notebook order

    @property
    def survivors(self) -> list[Mutant]:
        """Survivors not listed as equivalent: holes in the tests."""
        return [m for m in self.mutants if self.outcomes[m.id].status == "survived" and m.id not in self.equivalents]

    @property
    def stale(self) -> list[tuple[Equivalent, str]]:
        """Listed equivalents that are not (any more): killed, or not generated."""
        by_id = {m.id: m for m in self.mutants}
        wrong = []
        for entry in self.equivalents.values():
            if entry.id not in by_id:
                if not self.cells or entry.id.split("/", 1)[0] in self.cells:
                    wrong.append((entry, "no longer generated"))
            elif self.outcomes[entry.id].status != "survived":
                outcome = self.outcomes[entry.id]
                wrong.append((entry, f"{outcome.status} by {outcome.test}: it is not equivalent"))
        return wrong

    @property
    def ok(self) -> bool:
        return not self.survivors and not self.stale

    def counts(self, cell: str | None = None) -> dict[str, int]:
        """Mutants per status (``equivalent`` apart from ``survived``), for one cell or all."""
        counts = dict.fromkeys((*STATUSES, "equivalent"), 0)
        for m in self.mutants:
            if cell is not None and m.cell != cell:
                continue
            status = self.outcomes[m.id].status
            counts["equivalent" if status == "survived" and m.id in self.equivalents else status] += 1
        return counts


# --- running the tests against mutants --------------------------------------------------------


class _Restart(Exception):  # noqa: N818 (a control-flow signal)
    def __init__(self, status: str, test: str, detail: str) -> None:
        super().__init__(detail)
        self.outcome = (status, test, detail)


@functools.lru_cache(maxsize=256)
def _top_level_names(source: str) -> frozenset[str]:
    """Names a cell binds at its top level (functions, classes, assignments, imports)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return frozenset()
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names if alias.name != "*")
    return frozenset(names)


def _first_error(cell: NotebookNode) -> str:
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            value = str(output.get("evalue", "")).strip().splitlines()
            return f"{output.get('ename', 'Error')}: {value[0] if value else ''}".strip().rstrip(":")[:300]
    return ""


class MutationRunner(GuardedExecute):
    """Runs a notebook once, then its tests against one mutant after another."""

    min_timeout_s = 10
    timeout_factor = 10.0

    def serve(
        self,
        nb: NotebookNode,
        resources: dict[str, Any],
        next_mutant: Callable[[], Mutant | None],
        report: Callable[[Outcome], None],
    ) -> None:
        """Take mutants from ``next_mutant`` until it returns None, reporting each outcome.

        Raises:
            MutationError: when the reference notebook fails one of its own tests.
        """
        from nbclient import NotebookClient

        NotebookClient.__init__(self, nb, None)
        self.reset_execution_trackers()
        self._check_assign_resources(resources)
        self._originals = [cell.source for cell in nb.cells]
        self._budget: dict[int, int] = {}
        current: Mutant | None = None
        try:
            while True:
                with self.setup_kernel():
                    self._run_reference(first=not self._budget)
                    while True:
                        if current is None:
                            current = next_mutant()
                            if current is None:
                                return
                        try:
                            outcome = self._try(current)
                        except _Restart as restart:
                            report(Outcome(current.id, *restart.outcome))
                            current = None
                            break  # a fresh kernel for the next one
                        report(outcome)
                        current = None
                        if self._dirty:
                            break
        finally:
            for manager in self._managers:
                if hasattr(manager, "discard"):
                    manager.discard()

    def _run_reference(self, *, first: bool) -> None:
        """Run every cell of the reference notebook (setup cells in the judge first)."""
        from mlcraft.classroom.grading.judge import Judge

        assert self.kc is not None
        self.wait_for_reply(self.kc.kernel_info())
        self._dirty = False
        self._learner = _learner_source(self.nb)
        self.judge = Judge(self, self._learner)
        for index, cell in enumerate(self.nb.cells):
            if _is_setup_cell(cell):
                problem = self.judge.run_setup_cell(cell.source, self._label(index))
                if problem:
                    raise MutationError(f"the grader cannot run setup cell {self._label(index)}: {problem}")
        for index, cell in enumerate(self.nb.cells):
            if cell.cell_type != "code" or not cell.source.strip():
                continue
            self.events, self._output_bytes = [], {}
            cell.outputs = []
            self.timeout = 600 if first else self._budget.get(index, self.min_timeout_s)
            start = time.monotonic()
            try:
                self._execute(cell, index)
            except (KernelGone, DeadKernelError, CellTimeoutError) as err:
                raise MutationError(f"the reference notebook stopped at {self._label(index)}: {err}") from None
            took = time.monotonic() - start
            error = _first_error(cell)
            if first:
                if error:
                    raise MutationError(
                        f"the reference solution fails {self._label(index)} ({error}); "
                        "mutation testing needs a reference that passes every test"
                    )
                self._budget[index] = max(self.min_timeout_s, math.ceil(self.timeout_factor * took))

    def _forget(self, index: int) -> None:
        """Remove from the kernel the names reference cell ``index`` binds first, so a mutant
        that fails to bind one (its cell raises, a ``def`` is dropped) is tested without the
        reference's objects, as in a fresh kernel. Names earlier cells bind stay."""
        earlier: set[str] = set()
        for cell in self.nb.cells[:index]:
            if cell.cell_type == "code" and not is_test_cell(cell):
                earlier |= _top_level_names(cell.source)
        names = sorted(_top_level_names(self._originals[index]) - earlier)
        if not names:
            return
        code = f"for _mlcraft_name in {names!r}:\n    globals().pop(_mlcraft_name, None)\ndel _mlcraft_name\n"
        if not run_sync(self._async_silent)(code, float(self.kill_grace_s)):
            raise _Restart("crashed", "", "the kernel did not answer")

    def _try(self, mutant: Mutant) -> Outcome:
        cells = self.nb.cells
        self.events, self._output_bytes, self._notebook_cut = [], {}, False
        changed = [(mutant.index, mutant.source), *mutant.more]
        for index, source in changed:
            self._forget(index)
            cells[index].source = source
        assert self.judge is not None
        self.judge.learner = _learner_source(self.nb)
        self.judge.forget_learner_names()
        last = len(cells) - 1 if mutant.through is None else mutant.through
        ran: list[int] = []
        failed: list[str] = []
        outcome: Outcome | None = None
        try:
            for index in range(mutant.index, last + 1):
                cell = cells[index]
                if cell.cell_type != "code" or not cell.source.strip() or _is_setup_cell(cell):
                    continue
                self._run_cell(cell, index)
                if is_test_cell(cell):
                    error = _first_error(cell)
                    if error:
                        timed_out = any(e["kind"] == "timeout" and e["index"] == index for e in self.events)
                        failed.append(self._label(index))
                        if outcome is None:
                            outcome = Outcome(
                                mutant.id, "timeout" if timed_out else "killed", self._label(index), error
                            )
                        if mutant.through is None:
                            break
                else:
                    ran.append(index)
                    if self._timed_out:
                        outcome = Outcome(mutant.id, "timeout", self._label(index), "the mutant hung in this cell")
                        break
        finally:
            for index, _ in changed:
                cells[index].source = self._originals[index]
            self.judge.learner = self._learner
            self.judge.forget_learner_names()
        for index in ran:  # the reference cells again: the kernel as it was
            self._run_cell(cells[index], index)
            if self._timed_out or _first_error(cells[index]):
                self._dirty = True
                break
        return Outcome(mutant.id, "survived") if outcome is None else replace(outcome, failed=tuple(failed))

    def _run_cell(self, cell: NotebookNode, index: int) -> None:
        cell.outputs = []
        self.timeout = self._budget.get(index, self.min_timeout_s)
        self._timed_out = False
        try:
            self._execute(cell, index)
        except KernelGone as err:
            raise _Restart("timeout" if err.kind == "timeout" else "crashed", self._label(index), str(err)) from None
        except CellTimeoutError:
            raise _Restart("timeout", self._label(index), "the cell hung and ignored the interrupt") from None
        except DeadKernelError:
            raise _Restart("crashed", self._label(index), "the kernel died") from None


def _serve(notebook: str, folder: str, tasks: Any, results: Any, min_timeout_s: int, timeout_factor: float) -> None:
    """A worker process: one kernel, mutants from ``tasks``, outcomes to ``results``."""
    import torch

    torch.set_num_threads(1)
    try:
        nb = read_notebook(Path(notebook))
        runner = MutationRunner(extra_arguments=["--IPKernelApp.log_level=ERROR"])
        runner.min_timeout_s, runner.timeout_factor = min_timeout_s, timeout_factor

        def next_mutant() -> Mutant | None:
            item: Mutant | None = tasks.get()
            return item

        runner.serve(nb, {"metadata": {"path": folder}}, next_mutant, lambda o: results.put(("outcome", o)))
    except MutationError as err:
        results.put(("fatal", str(err)))
    except Exception as err:  # the worker must say why it stopped
        results.put(("fatal", f"a mutation worker failed: {type(err).__name__}: {err}"))
    results.put(("done", os.getpid()))


def run_mutation(
    root: Path,
    module: str,
    *,
    jobs: int | None = None,
    cells: Iterable[str] | None = None,
    min_timeout_s: int = 10,
    timeout_factor: float = 10.0,
    progress: bool = True,
) -> MutationReport:
    """Mutation-test ``module`` of the course at ``root``.

    Raises:
        FileNotFoundError: when the module has no solution notebook.
        MutationError: when the reference fails its own tests or a worker dies.
    """
    notebook = root / "solutions" / module / f"{module}.ipynb"
    if not notebook.is_file():
        raise FileNotFoundError(f"{notebook}: no solution notebook for module {module!r}")
    nb = read_notebook(notebook)
    answer_cells = [
        str(c.metadata["nbgrader"].get("grade_id")) for c in nb.cells if c.cell_type == "code" and is_solution(c)
    ]
    if cells is not None:
        unknown = sorted(set(cells) - set(answer_cells))
        if unknown:
            raise MutationError(f"{module} has no answer cell {', '.join(unknown)}; its answer cells: {answer_cells}")
    mutants = generate_mutants(nb, cells)
    equivalents = load_equivalents(root / "tests" / "assignments" / module / EQUIVALENTS_FILE)
    workers = max(1, min(jobs or os.cpu_count() or 1, len(mutants)))
    start = time.monotonic()
    outcomes: dict[str, Outcome] = {}
    if mutants:
        outcomes = _run_workers(notebook, mutants, workers, min_timeout_s, timeout_factor, progress)
    return MutationReport(
        module=module,
        mutants=mutants,
        outcomes=outcomes,
        equivalents=equivalents,
        seconds=time.monotonic() - start,
        workers=workers,
        cells=list(cells) if cells is not None else answer_cells,
    )


def _run_workers(
    notebook: Path, mutants: list[Mutant], workers: int, min_timeout_s: int, timeout_factor: float, progress: bool
) -> dict[str, Outcome]:
    from tqdm.auto import tqdm

    ctx = mp.get_context("spawn")
    tasks, results = ctx.Queue(), ctx.Queue()
    for m in mutants:
        tasks.put(m)
    for _ in range(workers):
        tasks.put(None)
    args = (str(notebook), str(notebook.parent.resolve()), tasks, results, min_timeout_s, timeout_factor)
    procs = [ctx.Process(target=_serve, args=args, daemon=True) for _ in range(workers)]
    for proc in procs:
        proc.start()
    outcomes: dict[str, Outcome] = {}
    done = 0
    bar = tqdm(total=len(mutants), desc=notebook.stem, unit="mutant", disable=not progress, leave=False)
    try:
        while len(outcomes) < len(mutants) and done < workers:
            try:
                kind, value = results.get(timeout=5)
            except queue.Empty:
                if not any(p.is_alive() for p in procs):
                    break
                continue
            if kind == "fatal":
                raise MutationError(f"{notebook.stem}: {value}")
            if kind == "done":
                done += 1
                continue
            outcomes[value.id] = value
            bar.update(1)
    finally:
        bar.close()
        for proc in procs:
            proc.join(timeout=5 if len(outcomes) == len(mutants) else 0)
            if proc.is_alive():
                proc.terminate()
    missing = len(mutants) - len(outcomes)
    if missing:
        raise MutationError(f"{notebook.stem}: a worker process died; {missing} mutants were not run")
    return outcomes


# --- reports ----------------------------------------------------------------------------------


def format_report(report: MutationReport, *, diffs: bool = True) -> str:
    """The per-cell table, then every unexplained survivor with its diff, as plain text."""

    def row(label: str, c: dict[str, int], total: int) -> str:
        return (
            f"{label:28} {total:7d} {c['killed']:6d} {c['timeout']:7d} {c['crashed']:7d} "
            f"{c['equivalent']:5d} {c['survived']:8d}"
        )

    header = (
        f"{'answer cell':28} {'mutants':>7} {'killed':>6} {'timeout':>7} {'crashed':>7} {'equiv':>5} {'survived':>8}"
    )
    rows = [header]
    for cell in report.cells:
        counts = report.counts(cell)
        rows.append(row(cell, counts, sum(counts.values())))
    rows.append(row("total", report.counts(), len(report.mutants)))
    lines = [
        f"{report.module}: {len(report.mutants)} mutants in {report.seconds:.0f} s on {report.workers} worker(s)",
        *rows,
    ]
    for m in report.survivors:
        lines += ["", f"SURVIVED {m.id} (line {m.line}): {m.change}"]
        if diffs:
            lines += [f"    {line}" for line in m.diff.splitlines()[2:]]
    for entry, why in report.stale:
        lines += ["", f"LISTED AS EQUIVALENT BUT {why.upper()}: {entry.id}  ({entry.change or entry.reason})"]
    if report.survivors:
        lines += [
            "",
            f"{len(report.survivors)} survivor(s): add a hidden test that tells each from the reference, or, if it "
            f"cannot be told apart, list it with a reason in tests/assignments/{report.module}/{EQUIVALENTS_FILE}",
        ]
    return "\n".join(lines)


def equivalents_stub(mutants: Iterable[Mutant]) -> str:
    """TOML entries for ``mutants``, each with an empty reason to fill in."""
    parts = []
    for m in mutants:
        change = m.change.replace("\\", "\\\\").replace('"', '\\"')
        parts.append(f'[[mutant]]\nid = "{m.id}"\nchange = "{change}"\nreason = ""\n')
    return "\n".join(parts)
