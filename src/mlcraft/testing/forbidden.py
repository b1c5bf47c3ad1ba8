"""Check that a learner's function does not simply call the library function it should replace.

Used in hidden tests: an exercise that asks for log-sum-exp written out must not just call
``torch.logsumexp``. Two independent detectors are combined:

1. a ``TorchFunctionMode`` that sees every torch API call, however it was imported or aliased
   (``from torch import logsumexp as lse`` included);
2. for non-torch targets, the target's attribute on its module is swapped for a recording
   wrapper during the call.

Limits: code that reaches the same kernel through a private path (``torch._C``) or copies
the library's source is not caught; hidden tests compare values too.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Hashable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any, TypeVar

from torch.overrides import TorchFunctionMode

__all__ = ["ForbiddenCallError", "call_without", "forbid_calls"]

T = TypeVar("T")


class ForbiddenCallError(AssertionError):
    """Raised when the function under test called one of the forbidden functions."""


def _resolve(dotted: str) -> tuple[Any, str, Any]:
    """``"torch.nn.functional.softmax"`` -> (module object, attribute name, attribute)."""
    if not isinstance(dotted, str) or "." not in dotted:
        raise ValueError(f"forbidden target must be a dotted path like 'torch.logsumexp', got {dotted!r}")
    module_path, _, attr = dotted.rpartition(".")
    try:
        owner: Any = importlib.import_module(module_path)
    except ImportError:
        parent_path, _, owner_name = module_path.rpartition(".")
        owner = getattr(importlib.import_module(parent_path), owner_name)
    if not hasattr(owner, attr):
        raise ValueError(f"{dotted!r} does not exist: {module_path} has no attribute {attr!r}")
    return owner, attr, getattr(owner, attr)


class _Recorder(TorchFunctionMode):
    def __init__(self, targets: dict[Any, str], calls: list[str]) -> None:
        super().__init__()
        self._targets = targets
        self._calls = calls

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        name = self._targets.get(func)
        if name is None and hasattr(func, "__name__"):
            # Tensor methods (x.logsumexp) arrive as the method descriptor; match by name.
            for target, target_name in self._targets.items():
                if getattr(target, "__name__", None) == func.__name__ and target_name.startswith("torch"):
                    name = target_name
                    break
        if name is not None:
            self._calls.append(name)
        return func(*args, **(kwargs or {}))


@contextmanager
def forbid_calls(*targets: str) -> Iterator[list[str]]:
    """Record calls to any of ``targets`` (dotted paths) made inside the ``with`` block.

    Yields the list of recorded names (one entry per call), filled in as calls happen.
    Tensor-method spellings (``x.logsumexp(...)``) of a forbidden torch function count too.
    """
    resolved = [(name, *_resolve(name)) for name in targets]
    calls: list[str] = []
    torch_targets: dict[Any, str] = {}
    with ExitStack() as stack:
        for name, owner, attr, original in resolved:
            if name.startswith("torch") and isinstance(original, Hashable):
                torch_targets[original] = name

            def recording(*args: Any, _orig: Any = original, _name: str = name, **kwargs: Any) -> Any:
                calls.append(_name)
                return _orig(*args, **kwargs)

            if callable(original):
                functools.update_wrapper(recording, original)
            setattr(owner, attr, recording)
            stack.callback(setattr, owner, attr, original)
        if torch_targets:
            stack.enter_context(_Recorder(torch_targets, calls))
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
