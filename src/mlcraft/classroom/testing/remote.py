"""Where a test cell's code runs: :func:`in_kernel` marks the part that must run beside the learner's.

In a notebook you run yourself, a test cell is ordinary code and ``in_kernel`` changes nothing.
When the notebook is graded, test cells run in the grader's own process, which never runs a
line of the learner's code: the learner's functions are called in the learner's kernel with
data in and data out (tensors, arrays, numbers, strings and containers of them), and every
comparison happens in the grader. A test that needs the learner's *objects* (a model trained
by the learner's step, a pydantic class, random generators the learner seeded) puts that part
in a function decorated with ``@in_kernel``: it runs in the learner's kernel and returns data,
which the rest of the test checks.

Rules for test authors (what makes a test hold against a hostile kernel):

- an ``@in_kernel`` function returns *observations* (what the learner's code produced), never a
  verdict and never an expected value: compute expected values outside it, from inputs the test
  chose, so they never depend on anything the learner's kernel can change;
- it may use the notebook's names (the learner's functions, the imports cell), other functions
  defined in test cells, and data constants of the test cells (sent as data); exceptions of
  library types (``pydantic.ValidationError``) are observed inside it and returned as data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

__all__ = ["in_kernel", "kernel_session"]

F = TypeVar("F", bound=Callable[..., Any])


class _Session(Protocol):
    def kernel_function(self, fn: Callable[..., Any]) -> Callable[..., Any]: ...


_session: _Session | None = None


def in_kernel(fn: F) -> F:
    """Run ``fn`` in the learner's kernel when grading; return it unchanged anywhere else."""
    session = _session
    if session is None:
        return fn
    return session.kernel_function(fn)  # type: ignore[return-value]


@contextmanager
def kernel_session(session: _Session) -> Iterator[None]:
    """While active, :func:`in_kernel` sends decorated functions to ``session`` (the grader's)."""
    global _session
    previous, _session = _session, session
    try:
        yield
    finally:
        _session = previous
