"""Fixtures shared by every test folder."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from mlcraft.data.tabular import TabularData, make_tabular_data
from mlcraft.models.tabular import TabularMLP
from mlcraft.recipes.tabular import train_tabular_mlp

pytest_plugins = ["mlcraft.classroom.testing.pytest_plugin"]


@pytest.fixture
def isolate_torch() -> Iterator[None]:
    """Leave the global RNG as it was (dropout and init draw from it), and run tiny tensors on one
    intra-op thread: on a busy machine, thread hand-offs cost more than the math."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng():
            yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tabular() -> tuple[TabularData, TabularData]:
    """(train, validation) rows of the synthetic table of 07_mlops."""
    return make_tabular_data(2000, seed=0).split(0.8)


@pytest.fixture(scope="session")
def trained_model(tabular: tuple[TabularData, TabularData]) -> TabularMLP:
    """The tabular MLP trained by its recipe with the default run (about a second)."""
    train, val = tabular
    return train_tabular_mlp(train, val)
