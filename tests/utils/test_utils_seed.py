"""Tests for mlcraft.utils.seed: seed_everything, set_deterministic, deterministic."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch

from mlcraft.utils.seed import deterministic, seed_everything, set_deterministic

MAX_SEED = 2**32 - 1


@pytest.fixture(autouse=True)
def _restore_global_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Leave RNGs, env vars and torch's determinism flags as they were before each test."""
    # monkeypatch restores (or removes) these variables afterwards.
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    py_state = random.getstate()
    np_state = np.random.get_state()
    torch_state = torch.get_rng_state()
    flags = _flags()
    yield
    random.setstate(py_state)
    np.random.set_state(np_state)
    torch.set_rng_state(torch_state)
    torch.use_deterministic_algorithms(flags[0], warn_only=flags[1])
    torch.backends.cudnn.deterministic = flags[2]
    torch.backends.cudnn.benchmark = flags[3]


def _flags() -> tuple[bool, bool, bool, bool]:
    return (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )


def _set_flags(algos: bool, warn_only: bool, cudnn_det: bool, benchmark: bool) -> None:
    torch.use_deterministic_algorithms(algos, warn_only=warn_only)
    torch.backends.cudnn.deterministic = cudnn_det
    torch.backends.cudnn.benchmark = benchmark


def _draws() -> dict[str, Any]:
    """One draw from every generator seed_everything is meant to seed."""
    linear = torch.nn.Linear(8, 4)
    return {
        "random": [random.random() for _ in range(5)] + [random.randint(0, 10**9)],
        "numpy": np.random.rand(16),
        "torch": torch.rand(16),
        "randn": torch.randn(3, 3),
        "linear_weight": linear.weight.detach().clone(),
        "linear_bias": linear.bias.detach().clone(),
    }


def _bitwise_equal(a: dict[str, Any], b: dict[str, Any]) -> dict[str, bool]:
    out: dict[str, bool] = {}
    for key in a:
        x, y = a[key], b[key]
        if isinstance(x, torch.Tensor):
            out[key] = x.dtype == y.dtype and torch.equal(x.view(torch.int32), y.view(torch.int32))
        elif isinstance(x, np.ndarray):
            out[key] = x.dtype == y.dtype and np.array_equal(x.view(np.uint64), y.view(np.uint64))
        else:
            out[key] = x == y
    return out


# --------------------------------------------------------------------------- seed_everything


@pytest.mark.parametrize("seed", [0, 1, 42, 12345, MAX_SEED])
def test_same_seed_gives_bitwise_identical_draws(seed: int) -> None:
    assert seed_everything(seed) == seed
    first = _draws()
    assert seed_everything(seed) == seed
    second = _draws()
    equal = _bitwise_equal(first, second)
    assert all(equal.values()), f"not reproducible: {equal}"


def test_different_seeds_differ_in_every_generator() -> None:
    seed_everything(1)
    first = _draws()
    seed_everything(2)
    second = _draws()
    equal = _bitwise_equal(first, second)
    assert not any(equal.values()), f"these generators ignored the seed: {[k for k, v in equal.items() if v]}"


def test_seed_everything_matches_each_library_seeded_directly() -> None:
    # Oracle: seeding each library by hand must give the same draws.
    seed_everything(7)
    via_helper = _draws()
    random.seed(7)
    np.random.seed(7)
    torch.manual_seed(7)
    by_hand = _draws()
    equal = _bitwise_equal(via_helper, by_hand)
    assert all(equal.values()), equal


@pytest.mark.parametrize("seed", [0, 3, MAX_SEED])
def test_seed_everything_sets_pythonhashseed(seed: int) -> None:
    assert "PYTHONHASHSEED" not in os.environ
    seed_everything(seed)
    assert os.environ["PYTHONHASHSEED"] == str(seed)


def test_seed_everything_overwrites_existing_pythonhashseed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONHASHSEED", "999")
    seed_everything(5)
    assert os.environ["PYTHONHASHSEED"] == "5"


@pytest.mark.parametrize("seed", [-1, MAX_SEED + 1, 2**64, -(2**31)])
def test_seed_out_of_range_raises_value_error(seed: int) -> None:
    with pytest.raises(ValueError, match=r"seed must be in \[0, 2\*\*32 - 1\]"):
        seed_everything(seed)


@pytest.mark.parametrize("seed", [True, False, 1.0, 0.5, "1", None, [1]], ids=repr)
def test_seed_non_int_raises_type_error(seed: object) -> None:
    with pytest.raises(TypeError, match="seed must be an int"):
        seed_everything(seed)  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", [True, -1, 1.5], ids=repr)
def test_rejected_seed_changes_nothing(seed: object) -> None:
    before = torch.get_rng_state()
    with pytest.raises((TypeError, ValueError)):
        seed_everything(seed)  # type: ignore[arg-type]
    assert "PYTHONHASHSEED" not in os.environ
    assert torch.equal(torch.get_rng_state(), before)


@pytest.mark.gpu
def test_seed_everything_seeds_cuda() -> None:
    seed_everything(11)
    first = torch.rand(32, device="cuda")
    seed_everything(11)
    second = torch.rand(32, device="cuda")
    assert torch.equal(first, second)
    seed_everything(12)
    assert not torch.equal(first, torch.rand(32, device="cuda"))


# --------------------------------------------------------------------------- set_deterministic


def test_set_deterministic_enables_everything() -> None:
    _set_flags(False, False, False, True)
    set_deterministic(True)
    assert torch.are_deterministic_algorithms_enabled() is True
    assert torch.is_deterministic_algorithms_warn_only_enabled() is False
    assert torch.backends.cudnn.deterministic is True
    assert torch.backends.cudnn.benchmark is False
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"


def test_set_deterministic_default_argument_is_enable() -> None:
    _set_flags(False, False, False, False)
    set_deterministic()
    assert torch.are_deterministic_algorithms_enabled() is True
    assert torch.backends.cudnn.deterministic is True


def test_set_deterministic_keeps_existing_cublas_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    set_deterministic(True)
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"


def test_set_deterministic_false_disables() -> None:
    _set_flags(True, True, True, False)
    set_deterministic(False)
    assert torch.are_deterministic_algorithms_enabled() is False
    assert torch.is_deterministic_algorithms_warn_only_enabled() is False
    assert torch.backends.cudnn.deterministic is False
    assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ


# --------------------------------------------------------------------------- deterministic()

INITIAL_STATES = [
    (False, False, False, False),  # torch defaults
    (False, False, False, True),  # benchmarking on
    (True, True, False, True),  # deterministic with warn_only, odd cudnn flags
    (True, False, True, False),  # already fully deterministic
]


@pytest.mark.parametrize("initial", INITIAL_STATES, ids=str)
def test_deterministic_context_enables_then_restores(initial: tuple[bool, bool, bool, bool]) -> None:
    _set_flags(*initial)
    with deterministic():
        assert torch.are_deterministic_algorithms_enabled() is True
        assert torch.is_deterministic_algorithms_warn_only_enabled() is False
        assert torch.backends.cudnn.deterministic is True
        assert torch.backends.cudnn.benchmark is False
    assert _flags() == initial


@pytest.mark.parametrize("initial", INITIAL_STATES, ids=str)
def test_deterministic_context_restores_when_body_raises(initial: tuple[bool, bool, bool, bool]) -> None:
    _set_flags(*initial)
    with pytest.raises(RuntimeError, match="boom"), deterministic():
        assert torch.are_deterministic_algorithms_enabled() is True
        raise RuntimeError("boom")
    assert _flags() == initial


def test_deterministic_false_disables_inside_and_restores() -> None:
    initial = (True, False, True, False)
    _set_flags(*initial)
    with deterministic(False):
        assert torch.are_deterministic_algorithms_enabled() is False
        assert torch.backends.cudnn.deterministic is False
    assert _flags() == initial


def test_deterministic_contexts_nest() -> None:
    initial = (False, False, False, True)
    _set_flags(*initial)
    with deterministic():
        with deterministic(False):
            assert torch.are_deterministic_algorithms_enabled() is False
        assert torch.are_deterministic_algorithms_enabled() is True
        assert torch.backends.cudnn.deterministic is True
    assert _flags() == initial


def test_deterministic_context_is_in_effect_for_torch() -> None:
    # In deterministic mode PyTorch fills uninitialized memory (torch.empty) with NaN.
    _set_flags(False, False, False, False)
    # torch defines this flag as a property of the module's class, which mypy cannot see.
    assert torch.utils.deterministic.fill_uninitialized_memory  # type: ignore[attr-defined]
    with deterministic():
        assert torch.empty(64).isnan().all()
        assert torch.equal(torch.empty(4, dtype=torch.int64), torch.full((4,), torch.iinfo(torch.int64).max))
    assert torch.are_deterministic_algorithms_enabled() is False
