"""Check that a learner's function does not simply call the library function it should replace.

Used in hidden tests: an exercise that asks for log-sum-exp written out must not just call
``torch.logsumexp``. Two detectors see a call however the function was imported or aliased
(``from torch import logsumexp as lse``, ``from mlcraft.utils import amp_dtype``):

1. for ``torch.*`` targets, a ``TorchFunctionMode`` that sees torch API calls, including the
   tensor-method spelling (``x.logsumexp(-1)``) of a forbidden torch function;
2. for every other target, a profile hook (``sys.setprofile``) that matches Python functions by
   their code object and built-in functions by identity.

Each call is recorded once.

Limits: code that reaches the same kernel through a private path (``torch._C``) or copies
the library's source is not caught; hidden tests compare values too.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from types import FrameType
from typing import Any, TypeVar

from torch.overrides import TorchFunctionMode

__all__ = ["ForbiddenCallError", "call_without", "forbid_calls"]

T = TypeVar("T")


class ForbiddenCallError(AssertionError):
    """Raised when the function under test called one of the forbidden functions."""


def _resolve(dotted: str) -> Any:
    """``"torch.nn.functional.softmax"`` -> the function object."""
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


@contextmanager
def forbid_calls(*targets: str) -> Iterator[list[str]]:
    """Record calls to any of ``targets`` (dotted paths) made inside the ``with`` block.

    Yields the list of recorded names (one entry per call), filled in as calls happen. A
    profile function that was active before is restored (and keeps receiving events) after.
    """
    resolved = {name: _resolve(name) for name in targets}
    torch_names = {fn.__name__: name for name, fn in resolved.items() if name.startswith("torch.")}
    others = {name: fn for name, fn in resolved.items() if not name.startswith("torch.")}
    by_code = {inspect.unwrap(f).__code__: name for name, f in others.items() if inspect.isfunction(inspect.unwrap(f))}
    by_id = {id(fn): name for name, fn in others.items() if inspect.isbuiltin(fn)}
    calls: list[str] = []
    previous = sys.getprofile()

    def profiler(frame: FrameType, event: Any, arg: Any) -> None:
        if event == "call":
            name = by_code.get(frame.f_code)
        elif event == "c_call":
            name = by_id.get(id(arg))
        else:
            name = None
        if name is not None:
            calls.append(name)
        if previous is not None:
            previous(frame, event, arg)

    with ExitStack() as stack:
        if torch_names:
            stack.enter_context(_TorchRecorder(torch_names, calls))
        sys.setprofile(profiler)
        stack.callback(sys.setprofile, previous)
        yield calls


def call_without(fn: Callable[..., T], *args: Any, forbidden: tuple[str, ...] | list[str], **kwargs: Any) -> T:
    """Call ``fn(*args, **kwargs)`` and fail if it used any ``forbidden`` function.

    Returns what ``fn`` returned, so a hidden test can check the value in the same call.

    Raises:
        ForbiddenCallError: naming each forbidden function that was called.
    """
    with forbid_calls(*forbidden) as calls:
        result = fn(*args, **kwargs)
    if calls:
        used = ", ".join(sorted(set(calls)))
        raise ForbiddenCallError(
            f"{getattr(fn, '__name__', fn)!s} calls {used}: this exercise asks you to write it yourself"
        )
    return result
