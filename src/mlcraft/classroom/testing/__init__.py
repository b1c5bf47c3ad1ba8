"""Helpers for the course's tests and for nbgrader test cells.

- :func:`assert_close`: dtype- and device-aware tolerances, immune to monkeypatching.
- :data:`DEVICE`, :func:`available_devices`: run the same test on CUDA where present.
- :func:`call_without` / :func:`forbid_calls`: a hidden test can check that a learner wrote
  the function rather than calling the library version; :func:`forbidden_family` names every
  library spelling of a computation (every quantile function of numpy, scipy, torch, pandas).
- :func:`grading_seed`: a hidden test's random inputs, chosen by the instructor's secret at
  grading time (the default seed without one).
- :func:`in_kernel`: marks the part of a test cell that must run beside the learner's code
  when the notebook is graded (the rest runs in the grader; see :mod:`mlcraft.classroom.testing.remote`).
"""

from mlcraft.classroom.testing.devices import DEVICE, available_devices, cuda_available
from mlcraft.classroom.testing.forbidden import ForbiddenCallError, call_without, forbid_calls, forbidden_family
from mlcraft.classroom.testing.remote import in_kernel
from mlcraft.classroom.testing.seeds import grading_seed
from mlcraft.classroom.testing.tolerances import assert_close, default_tolerances

__all__ = [
    "DEVICE",
    "ForbiddenCallError",
    "assert_close",
    "available_devices",
    "call_without",
    "cuda_available",
    "default_tolerances",
    "forbid_calls",
    "forbidden_family",
    "grading_seed",
    "in_kernel",
]
