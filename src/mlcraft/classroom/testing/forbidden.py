"""Check that a learner's function does not simply call the library function it should replace.

Used in hidden tests: an exercise that asks for log-sum-exp written out must not just call
``torch.logsumexp``. :func:`watch_calls` sees a call however the function was imported or
aliased (``from torch import logsumexp as lse``, ``from mlcraft.utils import amp_dtype``):

1. for ``torch.*`` targets that PyTorch dispatches (``torch.logsumexp``, ``F.softmax``), a
   ``TorchFunctionMode`` that sees the call, including the tensor-method spelling
   (``x.logsumexp(-1)``);
2. for every target, a profile hook (``sys.setprofile`` on the calling thread and
   ``threading.setprofile`` for threads started meanwhile) that matches Python functions by
   their bytecode (a ``__code__.replace(...)`` copy still matches) and built-in functions by
   identity: plain Python functions under ``torch.*`` (``torch.nn.MultiheadAttention.forward``,
   ``torch.cuda.is_bf16_supported``) are seen too. Bytecode is compared together with the
   source file and constants, so a learner's own function that happens to compile to the same
   bytecode is not taken for the library's; a function with a docstring also matches a copy
   compiled from its source elsewhere (``exec`` of the library's file under another name: the
   same bytecode, names and constants, docstring included, is a copy, not a coincidence).
   Built-in methods are also matched by their owner's
   module and qualified name, so a bound method (``[3, 1].sort()``, ``array.sort()``) is seen
   when its class's method (``builtins.list.sort``) is forbidden.

A task that asks for a computation written out forbids whole families, not one spelling:
:data:`FAMILIES` lists, per family, every function of numpy, scipy, torch, pandas and the
standard library that does it (``forbidden_family("quantile")`` gives the names this
environment has).

A function that switches the watch off (``sys.setprofile(None)``, popping the mode) is
reported as ``escaped``, and :func:`call_without` fails it: the absence of the check is a
failure, not a pass.

In grading, this check runs in the learner's own kernel, where it could be subverted; the
grader therefore also reads the learner's source (:mod:`mlcraft.classroom.grading.static`) and decides
the verdict outside the kernel. Code that reaches the same kernel through a private path
(``torch._C``) or copies the library's source with changes is not caught; hidden tests compare
values too.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, TypeVar

import torch
from torch.overrides import TorchFunctionMode, get_overridable_functions

__all__ = [
    "FAMILIES",
    "ForbiddenCallError",
    "Watch",
    "call_without",
    "forbid_calls",
    "forbidden_family",
    "resolve_target",
    "watch_calls",
]

# Every library function that computes the same thing, per family (dotted paths).
FAMILIES: dict[str, tuple[str, ...]] = {
    "quantile": (
        "numpy.percentile", "numpy.nanpercentile", "numpy.quantile", "numpy.nanquantile", "numpy.median",
        "numpy.nanmedian", "numpy.partition", "numpy.ma.median",
        "torch.quantile", "torch.nanquantile", "torch.median", "torch.nanmedian", "torch.kthvalue",
        "torch.Tensor.quantile", "torch.Tensor.nanquantile", "torch.Tensor.median", "torch.Tensor.kthvalue",
        "scipy.stats.scoreatpercentile", "scipy.stats.percentileofscore", "scipy.stats.iqr",
        "scipy.stats.mstats.mquantiles", "scipy.stats.mstats.hdquantiles", "scipy.stats.mstats.scoreatpercentile",
        "scipy.stats.quantile", "scipy.ndimage.percentile_filter", "scipy.ndimage.median",
        "pandas.Series.quantile", "pandas.DataFrame.quantile", "pandas.Series.median", "pandas.DataFrame.median",
        "pandas.Series.describe", "pandas.DataFrame.describe", "pandas.qcut",
        "statistics.quantiles", "statistics.median", "statistics.median_low", "statistics.median_high",
        "statistics.median_grouped",
    ),
    "histogram": (
        "numpy.histogram", "numpy.histogram_bin_edges", "numpy.histogram2d", "numpy.histogramdd",
        "numpy.digitize", "numpy.searchsorted", "numpy.bincount",
        "torch.histc", "torch.histogram", "torch.histogramdd", "torch.bucketize", "torch.searchsorted",
        "torch.bincount", "torch.Tensor.histc", "torch.Tensor.bincount",
        "scipy.stats.binned_statistic", "scipy.stats.binned_statistic_dd", "scipy.stats.relfreq",
        "scipy.stats.cumfreq",
        "pandas.cut", "pandas.qcut", "pandas.Series.value_counts", "pandas.Series.hist",
    ),
    "softmax": (
        "torch.softmax", "torch.log_softmax", "torch.nn.functional.softmax", "torch.nn.functional.log_softmax",
        "torch.special.softmax", "torch.special.log_softmax", "torch.Tensor.softmax", "torch.Tensor.log_softmax",
        "torch.nn.Softmax", "torch.nn.LogSoftmax", "torch.nn.functional.gumbel_softmax",
        "scipy.special.softmax", "scipy.special.log_softmax",
    ),
    "logsumexp": (
        "torch.logsumexp", "torch.special.logsumexp", "torch.Tensor.logsumexp", "torch.logaddexp",
        "torch.logcumsumexp", "numpy.logaddexp", "numpy.logaddexp2", "scipy.special.logsumexp",
    ),
    "attention": (
        "torch.nn.functional.scaled_dot_product_attention", "torch.nn.functional.multi_head_attention_forward",
        "torch.nn.MultiheadAttention", "torch.nn.MultiheadAttention.forward", "torch.nn.Transformer",
        "torch.nn.TransformerEncoderLayer", "torch.nn.TransformerDecoderLayer",
    ),
    "box_ops": (
        "torchvision.ops.box_iou", "torchvision.ops.generalized_box_iou", "torchvision.ops.distance_box_iou",
        "torchvision.ops.complete_box_iou", "torchvision.ops.box_area", "torchvision.ops.box_convert",
        "torchvision.ops.nms", "torchvision.ops.batched_nms", "torchvision.ops.boxes._box_inter_union",
    ),
}  # fmt: skip


def forbidden_family(*names: str) -> tuple[str, ...]:
    """The dotted paths of the :data:`FAMILIES` named, leaving out the ones this environment
    does not have (an optional library not installed, a function a version lacks).

    Raises:
        ValueError: for a family that does not exist.
    """
    found: list[str] = []
    for name in names:
        if name not in FAMILIES:
            raise ValueError(f"no family {name!r}; families: {', '.join(sorted(FAMILIES))}")
        for dotted in FAMILIES[name]:
            try:
                resolve_target(dotted)
            except ValueError:
                continue
            if dotted not in found:
                found.append(dotted)
    return tuple(found)


T = TypeVar("T")


class ForbiddenCallError(AssertionError):
    """Raised when the function under test called one of the forbidden functions."""


def resolve_target(dotted: str) -> Any:
    """``"torch.nn.functional.softmax"`` -> the function object.

    Raises:
        ValueError: when the path is malformed or names nothing callable.
    """
    if not isinstance(dotted, str) or "." not in dotted:
        raise ValueError(f"forbidden target must be a dotted path like 'torch.logsumexp', got {dotted!r}")
    module_path, _, attr = dotted.rpartition(".")
    owner: Any = None
    try:
        owner = importlib.import_module(module_path)
    except (ImportError, ValueError):
        # ``torch.nn.functional`` is a module; ``torch.Tensor.softmax`` is an attribute of a class.
        parent_path, _, owner_name = module_path.rpartition(".")
        try:
            owner = getattr(importlib.import_module(parent_path), owner_name, None) if parent_path else None
        except (ImportError, ValueError):
            owner = None
    if owner is None or not hasattr(owner, attr):
        raise ValueError(f"{dotted!r} does not exist: cannot find {attr!r} in {module_path!r}")
    target = getattr(owner, attr)
    if not callable(target):
        raise ValueError(f"{dotted!r} is not callable")
    return target


class _TorchRecorder(TorchFunctionMode):
    """Records torch API calls whose function (or tensor method of the same name) is forbidden."""

    def __init__(self, names: dict[str, str], calls: list[str]) -> None:
        super().__init__()
        self._names = names  # function __name__ -> dotted target
        self._calls = calls

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        name = self._names.get(getattr(func, "__name__", ""))
        if name is not None:
            self._calls.append(name)
        return func(*args, **(kwargs or {}))


@functools.cache
def _dispatched() -> frozenset[Any]:
    """torch functions and tensor methods that ``__torch_function__`` modes see."""
    found: set[Any] = set()
    for functions in get_overridable_functions().values():
        for fn in functions:
            try:
                found.add(fn)
            except TypeError:  # unhashable (a few properties)
                continue
    return frozenset(found)


def _code_key(code: Any) -> tuple[str, bytes, tuple[str, ...], tuple[Any, ...]]:
    """What a code object and its ``replace()`` copies share (a new name or line does not hide
    it), and what a learner's look-alike function written elsewhere does not (its file)."""
    return (code.co_filename, code.co_code, code.co_names, code.co_consts)


def _copy_key(code: Any) -> tuple[bytes, tuple[str, ...], tuple[Any, ...]] | None:
    """What a copy compiled from the same source shares, for functions with a docstring (the
    first constant); None for the others, whose bytecode a learner might write independently."""
    consts = code.co_consts
    if not (consts and isinstance(consts[0], str) and consts[0].strip()):
        return None
    return (code.co_code, code.co_names, consts)


def _c_qualname(fn: Any) -> tuple[str, str] | None:
    """``(module, qualified name)`` of a built-in function or method, bound or not: the owner
    class's module for methods (``[].sort`` and ``list.sort`` are both ``builtins.list.sort``)."""
    qualname = getattr(fn, "__qualname__", None)
    if not isinstance(qualname, str):
        return None
    owner = getattr(fn, "__objclass__", None)
    if owner is None:
        bound = getattr(fn, "__self__", None)
        if bound is not None and not inspect.ismodule(bound):
            owner = type(bound)
    module = getattr(owner, "__module__", None) if owner is not None else getattr(fn, "__module__", None)
    return (module, qualname) if isinstance(module, str) else None


@dataclass
class Watch:
    """What :func:`watch_calls` saw: forbidden calls, and whether the watch was switched off."""

    calls: list[str] = field(default_factory=list)
    escaped: str = ""  # why the watch cannot vouch for the call; '' when it saw everything


@contextmanager
def watch_calls(*targets: str) -> Iterator[Watch]:
    """Record calls to any of ``targets`` (dotted paths) made inside the ``with`` block, on this
    thread and on threads started inside it. A profile function that was active before is
    restored (and keeps receiving events) after.

    Raises:
        ValueError: for a target that does not exist.
    """
    resolved = {name: resolve_target(name) for name in targets}
    watch = Watch()
    dispatched = _dispatched()
    torch_names = {fn.__name__: name for name, fn in resolved.items() if name.startswith("torch.") and fn in dispatched}
    by_code: dict[tuple[str, bytes, tuple[str, ...], tuple[Any, ...]], str] = {}
    by_copy: dict[tuple[bytes, tuple[str, ...], tuple[Any, ...]], str] = {}
    by_id: dict[int, str] = {}
    by_qualname: dict[tuple[str, str], str] = {}  # (owner's module, qualified name) of C methods
    for name, fn in resolved.items():
        if name in torch_names.values():
            continue  # seen by the torch function mode
        plain = inspect.unwrap(fn)
        if inspect.isfunction(plain):
            by_code[_code_key(plain.__code__)] = name
            copy = _copy_key(plain.__code__)
            if copy is not None:
                by_copy[copy] = name
        elif inspect.isbuiltin(fn) or inspect.ismethoddescriptor(fn):
            by_id[id(fn)] = name
            key = _c_qualname(fn)
            if key is not None:
                by_qualname[key] = name
        if isinstance(fn, type):  # a forbidden class: its constructor and forward
            for method in ("__init__", "forward", "__call__"):
                member = vars(fn).get(method)
                if inspect.isfunction(member):
                    by_code[_code_key(inspect.unwrap(member).__code__)] = name
    qualnames = {qualname for _, qualname in by_qualname}
    previous = sys.getprofile()
    previous_threads = threading.getprofile() if hasattr(threading, "getprofile") else None

    def profiler(frame: FrameType, event: Any, arg: Any) -> None:
        if event == "call":
            name = by_code.get(_code_key(frame.f_code))
            if name is None and by_copy and (copy_key := _copy_key(frame.f_code)) is not None:
                name = by_copy.get(copy_key)
        elif event == "c_call":
            name = by_id.get(id(arg))
            if name is None and by_qualname and getattr(arg, "__qualname__", None) in qualnames:
                name = by_qualname.get(_c_qualname(arg) or ("", ""))
        else:
            name = None
        if name is not None:
            watch.calls.append(name)
        if previous is not None:
            previous(frame, event, arg)

    mode = _TorchRecorder(torch_names, watch.calls) if torch_names else None
    if mode is not None:
        torch._C._push_on_torch_function_stack(mode)
    sys.setprofile(profiler)
    threading.setprofile(profiler)
    try:
        yield watch
    finally:
        if sys.getprofile() is not profiler:
            watch.escaped = "the profile hook was replaced or removed during the call"
        sys.setprofile(previous)
        threading.setprofile(previous_threads)
        if mode is not None:
            stack = [torch._C._get_function_stack_at(i) for i in range(torch._C._len_torch_function_stack())]
            if not stack or stack[-1] is not mode:
                watch.escaped = watch.escaped or "the torch function mode stack was changed during the call"
            if any(m is mode for m in stack):  # pop ours and whatever was left above it
                while torch._C._len_torch_function_stack() and torch._C._pop_torch_function_stack() is not mode:
                    pass


@contextmanager
def forbid_calls(*targets: str) -> Iterator[list[str]]:
    """Record calls to any of ``targets`` (dotted paths) made inside the ``with`` block.

    Yields the list of recorded names (one entry per call), filled in as calls happen.
    """
    with watch_calls(*targets) as watch:
        yield watch.calls


def call_without(fn: Callable[..., T], *args: Any, forbidden: tuple[str, ...] | list[str], **kwargs: Any) -> T:
    """Call ``fn(*args, **kwargs)`` and fail if it used any ``forbidden`` function.

    Returns what ``fn`` returned, so a hidden test can check the value in the same call. When
    grading, ``fn`` is the learner's function in the learner's kernel and the grader adds a
    check of the learner's source (see the module docstring).

    Raises:
        ForbiddenCallError: naming each forbidden function that was called, or saying that the
            function switched the check off.
    """
    remote = getattr(fn, "__mlcraft_call_without__", None)
    if remote is not None:
        return remote(args, kwargs, tuple(forbidden))  # type: ignore[no-any-return]
    with watch_calls(*forbidden) as watch:
        result = fn(*args, **kwargs)
    label = getattr(fn, "__name__", fn)
    if watch.calls:
        used = ", ".join(sorted(set(watch.calls)))
        raise ForbiddenCallError(f"{label!s} calls {used}: this exercise asks you to write it yourself")
    if watch.escaped:
        raise ForbiddenCallError(f"{label!s} could not be checked for forbidden calls: {watch.escaped}")
    return result
