"""Seeding and deterministic mode.

Follows PyTorch's reproducibility notes (https://pytorch.org/docs/stable/notes/randomness.html):
seed every generator a run draws from, and, when bitwise-identical results matter more than
speed, ask cuDNN and PyTorch for deterministic kernels.
"""

from __future__ import annotations

import numbers
import os
import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

__all__ = ["deterministic", "seed_everything", "set_deterministic"]

_MAX_SEED = 2**32 - 1


def seed_everything(seed: int) -> int:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and every CUDA device).

    Also sets ``PYTHONHASHSEED`` so that subprocesses (data-loader workers, DDP ranks) hash
    strings the same way. Returns ``seed`` so a run can log what it used.

    Raises:
        TypeError: if ``seed`` is not an integer (Python or NumPy; a float seed silently
            truncates in some libraries).
        ValueError: if ``seed`` is outside ``[0, 2**32 - 1]``, the range NumPy accepts.
    """
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an int, got {type(seed).__name__} {seed!r}")
    seed = int(seed)
    if not 0 <= seed <= _MAX_SEED:
        raise ValueError(f"seed must be in [0, 2**32 - 1], got {seed}")
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    return seed


def set_deterministic(enabled: bool = True) -> None:
    """Switch PyTorch to deterministic algorithms (or back).

    Deterministic mode costs speed: cuDNN benchmarking is off, and some CUDA kernels (e.g.
    ``index_add_`` with atomics) are replaced or raise. ``CUBLAS_WORKSPACE_CONFIG`` must be
    set before the first cuBLAS call for deterministic matmuls on CUDA >= 10.2.
    """
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(enabled, warn_only=False)
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = False  # autotuning picks kernels by timing: never reproducible


@contextmanager
def deterministic(enabled: bool = True) -> Iterator[None]:
    """Context manager form of :func:`set_deterministic` that restores the previous settings."""
    previous = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    set_deterministic(enabled)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        torch.backends.cudnn.deterministic = previous[2]
        torch.backends.cudnn.benchmark = previous[3]
