"""Test cells run here, in the grader's process; the learner's code only answers with data.

When a notebook is graded, the learner's cells run in the sandboxed kernel and the test cells
run in a :class:`Judge`, in the grading process, which never runs the learner's code. A name a
test cell uses that the instructor's cells and earlier test cells do not define is the
learner's: the judge asks the kernel what it is (:mod:`mlcraft.classroom.grading.agent`) and binds

- a function or class to a :class:`Remote`: calling it sends the arguments to the kernel as data
  and returns the result as data (:mod:`mlcraft.classroom.grading.protocol`); tensors, arrays, lists and
  dicts the learner's code changed in place are updated here too;
- a plain value (a number, a tensor) to a copy of its value;
- a module the grader has already imported (``torch`` imported by an unlocked cell) to the
  grader's own copy of it.

A test function decorated with :func:`mlcraft.classroom.testing.in_kernel` is sent to the kernel (with
the other test-cell functions it uses and the data constants it reads) and run there; its
result comes back as data. Everything else a test does, every comparison and every ``assert``,
happens here, on data: no hook, patch or lying object in the kernel can turn a failing test
into a pass. The worst it can do is answer wrongly, or not at all.

``call_without`` on a learner's function also reads the learner's source here
(:mod:`mlcraft.classroom.grading.static`), and fails when the dynamic check in the kernel does not report
back.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import io
import linecache
import symtable
import sys
import traceback
import types
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import torch

from mlcraft.classroom.grading.protocol import DataError, decode, encode, shift_buffers
from mlcraft.classroom.grading.static import LearnerSource
from mlcraft.classroom.testing.forbidden import ForbiddenCallError
from mlcraft.classroom.testing.remote import kernel_session

__all__ = [
    "Judge",
    "KernelGone",
    "KernelLink",
    "KernelTimeout",
    "LearnerDataError",
    "Remote",
    "describe",
    "describe_args",
    "format_failure",
    "free_globals",
]


class KernelGone(Exception):  # noqa: N818 (an event, not an error of the test)
    """The kernel died or stopped answering during a request; the executor restarts it."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind  # "crashed" or "timeout"


class KernelTimeout(AssertionError):  # noqa: N818 (reads as what happened)
    """The learner's code ran past the cell's time and was interrupted (the kernel survived)."""


class LearnerDataError(AssertionError):
    """The learner's code answered with something that is not data (or the request failed)."""


class KernelLink(Protocol):
    """How the judge reaches the kernel (implemented by the executor)."""

    def request(self, content: dict[str, Any], buffers: list[bytes]) -> tuple[dict[str, Any], list[Any]]: ...


def free_globals(source: str) -> set[str]:
    """Names ``source`` reads from its module's globals (or builtins) without assigning them."""
    try:
        table = symtable.symtable(source, "<cell>", "exec")
    except SyntaxError:
        return set()
    assigned = {s.get_name() for s in table.get_symbols() if s.is_assigned() or s.is_imported()}
    assigned |= {t.get_name() for t in table.get_children() if t.get_type() in ("function", "class")}
    found: set[str] = set()

    def visit(tab: symtable.SymbolTable, module_level: bool) -> None:
        for sym in tab.get_symbols():
            if not sym.is_referenced():
                continue
            if module_level or sym.is_global() or (tab.get_type() == "class" and not sym.is_assigned()):
                found.add(sym.get_name())
        for child in tab.get_children():
            visit(child, False)

    visit(table, True)
    return found - assigned


def _top_level_defs(source: str, tree: ast.Module) -> dict[str, str]:
    """``name -> source`` of each top-level function and class (decorators included)."""
    lines = source.splitlines(keepends=True)
    out = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            out[node.name] = "".join(lines[first - 1 : node.end_lineno])
    return out


def _is_data(value: Any) -> bool:
    if isinstance(value, types.ModuleType | type | Remote | _KernelFunction) or callable(value):
        return False
    try:
        encode(value)
    except DataError:
        return False
    return True


def _apply_after(original: Any, after: Any) -> None:
    """Update ``original`` in place to ``after`` (the argument as the learner's code left it)."""
    if isinstance(original, torch.Tensor) and isinstance(after, torch.Tensor):
        same_layout = (original.shape, original.dtype, original.device) == (after.shape, after.dtype, after.device)
        if not same_layout:  # unsqueeze_, resize_, `.data = ...`: the tensor itself changed
            original.data = after.detach()
        elif original.device.type != "meta" and not torch.equal(original.detach(), after.detach()):
            with torch.no_grad():
                original.copy_(after)
    elif isinstance(original, np.ndarray) and isinstance(after, np.ndarray):
        if original.shape == after.shape and original.dtype == after.dtype and original.flags.writeable:
            original[...] = after
    elif isinstance(original, list) and isinstance(after, list):
        if len(original) != len(after):
            original[:] = after
            return
        for index, (old, new) in enumerate(zip(original, after, strict=True)):
            if _mutable_pair(old, new):
                _apply_after(old, new)
            elif not _same_value(old, new):
                original[index] = new
    elif isinstance(original, tuple) and isinstance(after, tuple) and len(original) == len(after):
        for old, new in zip(original, after, strict=True):
            if _mutable_pair(old, new):
                _apply_after(old, new)
    elif isinstance(original, dict) and isinstance(after, dict):
        for key in [k for k in original if k not in after]:
            del original[key]
        for key, new in after.items():
            if key in original and _mutable_pair(original[key], new):
                _apply_after(original[key], new)
            elif key not in original or not _same_value(original[key], new):
                original[key] = new
    elif isinstance(original, bytearray) and isinstance(after, bytearray | bytes):
        original[:] = after
    elif _is_pandas_table(original) and type(after) is type(original) and not _same_table(original, after):
        # What pandas' own `inplace=True` does: the object keeps its identity, its content,
        # columns, index and dtypes become the learner's.
        original._update_inplace(after.copy())


def _is_pandas_table(value: Any) -> bool:
    """A plain pandas DataFrame or Series (pandas is imported only where one travels)."""
    return type(value).__module__.startswith("pandas") and type(value).__name__ in ("DataFrame", "Series")


def _same_table(a: Any, b: Any) -> bool:
    """Equal labels, dtypes and values (NaN equal to NaN), as ``assert_frame_equal(check_exact=True)`` sees them."""
    try:
        same_columns = a.ndim == 1 or (a.columns.equals(b.columns) and a.dtypes.equals(b.dtypes))
        return bool(
            same_columns
            and a.index.equals(b.index)
            and (a.ndim == 2 or (a.dtype == b.dtype and a.name == b.name))
            and a.equals(b)
        )
    except Exception:
        return False


def _mutable_pair(a: Any, b: Any) -> bool:
    if _is_pandas_table(a):
        return type(a) is type(b)
    return isinstance(a, torch.Tensor | np.ndarray | list | tuple | dict | bytearray) and type(a) is type(b)


def _same_value(a: Any, b: Any) -> bool:
    """Equal plain values (the checker's own objects and decoded data only)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and a != a and b != b:
        return True
    try:
        return bool(a == b)
    except Exception:
        return False


class Remote:
    """A learner's function or class, reached by name in the learner's kernel."""

    __slots__ = ("__name__", "_judge")

    def __init__(self, judge: Judge, name: str) -> None:
        self._judge = judge
        self.__name__ = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._judge.call(self.__name__, args, kwargs)

    def __mlcraft_call_without__(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], forbidden: tuple[str, ...]
    ) -> Any:
        return self._judge.call(self.__name__, args, kwargs, forbidden)

    def __repr__(self) -> str:
        return f"<your {self.__name__}>"

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        raise LearnerDataError(
            f"the test read {self.__name__}.{attribute}, but only data crosses from your kernel to the grader; "
            "this test must observe it in an @in_kernel function"
        )


class _KernelFunction:
    """A test function that runs in the learner's kernel (:func:`mlcraft.classroom.testing.in_kernel`)."""

    def __init__(self, judge: Judge, fn: Callable[..., Any]) -> None:
        self._judge = judge
        self.__name__ = fn.__name__
        self.__wrapped__ = fn

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._judge.run_driver(self.__name__, args, kwargs)

    def __mlcraft_call_without__(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], forbidden: tuple[str, ...]
    ) -> Any:
        return self._judge.run_driver(self.__name__, args, kwargs, forbidden)


class _StreamSink(io.TextIOBase):
    """``sys.stdout`` / ``sys.stderr`` of a test cell: text becomes stream outputs, in order."""

    def __init__(self, add: Callable[[str, str], None], name: str) -> None:
        self._add = add
        self._name = name

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._add(self._name, str(text))
        return len(text)


class Judge:
    """Runs the instructor's cells and test cells of one notebook, in this process."""

    def __init__(self, link: KernelLink, learner: LearnerSource | None = None) -> None:
        self.link = link
        self.learner = learner or LearnerSource([])
        self.namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
        self.defs: dict[str, str] = {}  # test-cell functions and classes, by name
        self._learner_names: set[str] = set()  # names bound from the kernel's answers
        self._add_output: Callable[[str, str], None] = lambda name, text: None

    def forget_learner_names(self) -> None:
        """Unbind every name taken from the kernel, so the next test cell asks again (the
        learner's cells were run again with other code: mutation testing)."""
        for name in self._learner_names:
            self.namespace.pop(name, None)
        self._learner_names.clear()

    # --- cells ------------------------------------------------------------------------------
    def run_setup_cell(self, source: str, label: str) -> str:
        """Run an instructor cell (imports, constants) here too; '' or the error it raised."""
        sink: list[tuple[str, str]] = []
        try:
            self._exec(source, label, lambda n, t: sink.append((n, t)))
        except Exception as err:
            return f"{type(err).__name__}: {err}"
        return ""

    def run_test_cell(self, source: str, label: str, add_output: Callable[[str, str], None]) -> BaseException | None:
        """Run a test cell; its output goes to ``add_output(stream_name, text)``. Returns the
        exception it raised (the test failed) or None (it passed).

        Raises:
            KernelGone: when the kernel died or hung during the cell (the executor restarts it).
        """
        try:
            self._exec(source, label, add_output)
        except KernelGone:
            raise
        except KeyboardInterrupt:
            raise
        except BaseException as err:
            return err
        return None

    def _exec(self, source: str, label: str, add_output: Callable[[str, str], None]) -> None:
        filename = f"<{label}>"
        linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
        tree = ast.parse(source, filename)
        self.defs.update(_top_level_defs(source, tree))
        code = compile(tree, filename, "exec")
        self._bind_learner_names(free_globals(source))
        previous, self._add_output = self._add_output, add_output
        try:
            with (
                kernel_session(self),
                contextlib.redirect_stdout(_StreamSink(add_output, "stdout")),
                contextlib.redirect_stderr(_StreamSink(add_output, "stderr")),
            ):
                exec(code, self.namespace)
        finally:
            self._add_output = previous

    def _bind_learner_names(self, names: set[str]) -> None:
        wanted = sorted(n for n in names if n not in self.namespace and not hasattr(builtins, n))
        if not wanted:
            return
        reply, buffers = self.link.request({"op": "describe", "names": wanted}, [])
        described = _mapping(reply.get("names"))
        for name in wanted:
            entry = _mapping(described.get(name))
            kind = entry.get("kind")
            module = sys.modules.get(str(entry.get("module"))) if kind == "module" else None
            if kind in ("callable", "object", "data", "module"):
                self._learner_names.add(name)
            if module is not None:  # a module the grader has loaded itself (torch, numpy...)
                self.namespace[name] = module
                continue
            if kind == "data":
                try:
                    self.namespace[name] = decode(entry.get("value"), buffers)
                    continue
                except DataError:
                    pass
            if kind in ("callable", "object", "data", "module"):
                self.namespace[name] = Remote(self, name)
            # missing: left unbound, so the test raises NameError as it would in the notebook

    # --- the kernel side --------------------------------------------------------------------
    def kernel_function(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """:func:`mlcraft.classroom.testing.in_kernel` while a test cell runs here."""
        if fn.__name__ not in self.defs:
            raise TypeError(f"@in_kernel applies to functions defined at the top level of a test cell, not {fn!r}")
        return _KernelFunction(self, fn)

    def _bundle(self, entry: str) -> tuple[str, dict[str, Any], dict[str, str], set[str]]:
        """Source of ``entry`` and the test functions it uses; the data globals and the modules
        (imported by test cells) it reads; the learner's names it uses."""
        sources: dict[str, str] = {}
        data: dict[str, Any] = {}
        modules: dict[str, str] = {}
        learner: set[str] = set()
        todo = [entry]
        while todo:
            name = todo.pop()
            if name in sources:
                continue
            sources[name] = self.defs[name]
            for free in free_globals(self.defs[name]):
                value = self.namespace.get(free, _MISSING)
                if free in self.defs and not isinstance(value, Remote):
                    todo.append(free)
                elif isinstance(value, Remote) or (value is _MISSING and not hasattr(builtins, free)):
                    learner.add(free)
                elif isinstance(value, types.ModuleType):
                    modules[free] = value.__name__
                elif value is not _MISSING and _is_data(value):
                    data[free] = value
        ordered = [sources[n] for n in self.defs if n in sources]  # definition order
        return "\n\n".join(ordered), data, modules, learner

    def call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], forbidden: tuple[str, ...] = ()) -> Any:
        """Call the learner's ``name`` in the kernel; data in, data out."""
        self._check_source([name], forbidden, name)
        content = {"op": "call", "name": name}
        return self._request(name, content, args, kwargs, forbidden)

    def run_driver(
        self, entry: str, args: tuple[Any, ...], kwargs: dict[str, Any], forbidden: tuple[str, ...] = ()
    ) -> Any:
        """Run the test function ``entry`` in the kernel; data in, data out."""
        source, data, modules, learner = self._bundle(entry)
        self._check_source(sorted(learner), forbidden, entry)
        globals_tree, globals_buffers = encode(data)
        content = {"op": "run", "source": source, "entry": entry, "globals": globals_tree, "modules": modules}
        return self._request(entry, content, args, kwargs, forbidden, globals_buffers)

    def _check_source(self, entries: list[str], forbidden: tuple[str, ...], label: str) -> None:
        if not forbidden:
            return
        problems = self.learner.forbidden_uses(entries, forbidden)
        if problems:
            raise ForbiddenCallError(
                f"{label}: your code {'; '.join(problems)}: this exercise asks you to write it yourself"
            )

    def _request(
        self,
        label: str,
        content: dict[str, Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        forbidden: tuple[str, ...],
        prefix_buffers: list[bytes] | None = None,
    ) -> Any:
        buffers = list(prefix_buffers or [])
        tree, own = encode([list(args), kwargs])
        content["args"] = shift_buffers(tree, len(buffers))
        buffers += own
        if forbidden:
            content["forbidden"] = list(forbidden)
        reply, reply_buffers = self.link.request(content, buffers)
        status = reply.get("status")
        after = reply.get("after")
        if status in ("ok", "raised") and after is not None:
            try:
                new_args, new_kwargs = decode(after, reply_buffers)
                _apply_after(list(args), list(new_args))
                _apply_after(kwargs, new_kwargs)
            except (DataError, TypeError, ValueError):
                pass
        if status == "error":
            raise LearnerDataError(f"{label}: {str(reply.get('message', 'no answer'))[:2000]}")
        if status == "raised":
            err = decode(reply.get("exception"), reply_buffers)
            if not isinstance(err, BaseException):
                raise LearnerDataError(f"{label}: the kernel's answer is not an exception")
            notes = [f"{_CALL_NOTE}{label}({describe_args(args, kwargs)})"]
            text = reply.get("traceback")
            if isinstance(text, str) and text:
                notes.append(f"in your code:\n{text[-20_000:]}")
            err.__notes__ = notes
            raise err
        if status != "ok":
            raise LearnerDataError(f"{label}: the kernel's answer is not valid")
        value = decode(reply.get("value"), reply_buffers)
        if forbidden:
            watch = _mapping(reply.get("watch"))
            if watch.get("watched") is not True:
                raise ForbiddenCallError(f"{label}: the check for forbidden calls did not report back from your kernel")
            calls = [str(c) for c in watch.get("calls", []) if isinstance(c, str)]
            if calls:
                raise ForbiddenCallError(
                    f"{label} calls {', '.join(sorted(set(calls)))}: this exercise asks you to write it yourself"
                )
            if watch.get("escaped"):
                raise ForbiddenCallError(f"{label} could not be checked for forbidden calls: {watch['escaped']}")
        return value


_MISSING = object()
_CALL_NOTE = "raised by your code when the test called "


def describe(value: Any, depth: int = 0) -> str:
    """A short description of a test input: kind, shape, dtype, device; small values in full."""
    if isinstance(value, torch.Tensor):
        if 0 < value.numel() <= 4 and value.device.type != "meta":
            return f"tensor({value.tolist()}, dtype={value.dtype}, device={value.device.type})"
        return f"tensor of shape {list(value.shape)}, {value.dtype}, on {value.device.type}"
    if isinstance(value, np.ndarray):
        return f"array of shape {list(value.shape)}, {value.dtype}"
    if isinstance(value, (bool, int, float, complex, str, bytes, type(None), torch.dtype, torch.device)):
        text = repr(value)
        return text if len(text) <= 60 else f"{text[:57]}..."
    if isinstance(value, (list, tuple, set, frozenset)):
        kind = type(value).__name__
        if depth >= 1 or len(value) > 4:
            return f"{kind} of {len(value)}"
        inner = ", ".join(describe(v, depth + 1) for v in value)
        return f"[{inner}]" if kind == "list" else f"{kind}([{inner}])"
    if isinstance(value, dict):
        keys = ", ".join(repr(k) for k in list(value)[:6])
        return f"dict with keys {keys}{', ...' if len(value) > 6 else ''}"
    return type(value).__name__


def describe_args(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """``describe`` of each argument, as a call's argument list."""
    parts = [describe(a) for a in args] + [f"{k}={describe(v)}" for k, v in kwargs.items()]
    return ", ".join(parts)


def _mapping(value: Any) -> dict[str, Any]:
    """``value`` when it is a dict (the kernel's answers are checked, never trusted), else ``{}``."""
    return value if isinstance(value, dict) else {}


def format_failure(err: BaseException, label: str) -> tuple[str, str, list[str]]:
    """``(ename, evalue, traceback lines)`` of a failed test, showing the test's own lines."""
    frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename.startswith("<")]
    lines = ["Traceback (most recent call last):\n", *traceback.format_list(frames)]
    lines += traceback.format_exception_only(type(err), err)
    notes = [str(note) for note in getattr(err, "__notes__", []) or []]
    for note in notes:
        lines.append(note + "\n")
    value = str(err)[:4096]
    calls = [note for note in notes if note.startswith(_CALL_NOTE)]
    if calls:  # the input that made the learner's code raise, in the one-line summary too
        value = f"{value} ({calls[0][:1000]})"
    return type(err).__name__, value, [line.rstrip("\n") for line in lines][-400:]
