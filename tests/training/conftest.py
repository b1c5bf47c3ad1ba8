"""Shared fixtures for the training tests: global-state hygiene and quiet configs."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import torch

from mlcraft.config.training import TrainingConfig


@pytest.fixture(autouse=True, scope="session")
def _single_thread() -> Iterator[None]:
    """Tiny models gain nothing from intra-op threads, and on a busy 2-core machine (pytest -n 2)
    OpenMP threads contend badly (milliseconds per tiny op). Results do not depend on it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _restore_global_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The Trainer seeds every RNG, sets PYTHONHASHSEED and may switch on deterministic mode:
    undo all of it after each test so tests stay independent under any order."""
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    py_state, np_state, torch_state = random.getstate(), np.random.get_state(), torch.get_rng_state()
    flags = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    default_dtype = torch.get_default_dtype()
    yield
    random.setstate(py_state)
    np.random.set_state(np_state)
    torch.set_rng_state(torch_state)
    # The first call of these setters can take seconds (library loading): only touch what changed.
    now = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    if now != flags[:2]:
        torch.use_deterministic_algorithms(flags[0], warn_only=flags[1])
    if torch.backends.cudnn.deterministic != flags[2]:
        torch.backends.cudnn.deterministic = flags[2]
    if torch.backends.cudnn.benchmark != flags[3]:
        torch.backends.cudnn.benchmark = flags[3]
    torch.set_default_dtype(default_dtype)


@pytest.fixture
def make_config() -> Callable[..., TrainingConfig]:
    """A quiet TrainingConfig factory: no progress bar, no log lines, no AMP unless asked."""

    def factory(**overrides: Any) -> TrainingConfig:
        values: dict[str, Any] = {"progress": False, "log_every": 1_000_000, "amp": False}
        values.update(overrides)
        return TrainingConfig(**values)

    return factory
