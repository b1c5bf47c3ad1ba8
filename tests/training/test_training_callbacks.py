"""Unit tests for mlcraft.training.callbacks: EarlyStopping and HistoryCallback."""

from __future__ import annotations

import math

import pytest

from mlcraft.training.callbacks import Callback, EarlyStopping, HistoryCallback


def _run(stopper: EarlyStopping, values: list[float]) -> list[bool]:
    return [stopper.step(v) for v in values]


def test_min_mode_stops_after_patience_bad_evals() -> None:
    stopper = EarlyStopping(patience=2, mode="min")
    assert _run(stopper, [1.0, 0.8, 0.9, 0.85]) == [False, False, False, True]
    assert stopper.best == 0.8
    assert stopper.bad_evals == 2


def test_max_mode() -> None:
    stopper = EarlyStopping(patience=2, mode="max")
    assert _run(stopper, [0.5, 0.7, 0.6, 0.8, 0.8, 0.79]) == [False, False, False, False, False, True]
    assert stopper.best == 0.8


def test_improvement_resets_the_counter() -> None:
    stopper = EarlyStopping(patience=3)
    assert _run(stopper, [5.0, 6.0, 7.0, 4.0, 4.5, 4.5]) == [False] * 6
    assert stopper.bad_evals == 2
    assert stopper.step(4.0) is True  # equal to best: not an improvement


def test_patience_one_stops_on_first_non_improvement() -> None:
    stopper = EarlyStopping(patience=1)
    assert _run(stopper, [3.0, 2.0, 2.0]) == [False, False, True]


@pytest.mark.parametrize(
    ("mode", "best", "value", "expected"),
    [
        ("min", 1.0, 0.95, False),  # improved by 0.05 < min_delta 0.1
        ("min", 1.0, 0.9, False),  # by exactly min_delta (computed as 1.0 - 0.1 = 0.9): not strictly better
        ("min", 1.0, 0.85, True),
        ("max", 1.0, 1.05, False),
        ("max", 1.0, 1.15, True),
    ],
)
def test_min_delta(mode: str, best: float, value: float, expected: bool) -> None:
    stopper = EarlyStopping(patience=5, mode=mode, min_delta=0.1)  # type: ignore[arg-type]
    stopper.step(best)
    assert stopper.improved(value) is expected


def test_min_delta_counts_small_changes_as_bad() -> None:
    stopper = EarlyStopping(patience=2, mode="min", min_delta=0.1)
    assert _run(stopper, [1.0, 0.95, 0.92]) == [False, False, True]
    assert stopper.best == 1.0


def test_nan_never_improves() -> None:
    stopper = EarlyStopping(patience=2)
    assert stopper.improved(math.nan) is False  # not even as the first value
    assert _run(stopper, [math.nan, 1.0, math.nan, math.nan]) == [False, False, False, True]
    assert stopper.best == 1.0


def test_first_finite_value_always_improves_and_inf_is_comparable() -> None:
    stopper = EarlyStopping(patience=1, mode="max")
    assert stopper.improved(-1e300) is True
    stopper.step(-math.inf)
    assert stopper.improved(-1e300) is True


def test_state_dict_round_trip() -> None:
    stopper = EarlyStopping(patience=3, mode="max")
    _run(stopper, [0.1, 0.3, 0.2])
    other = EarlyStopping(patience=3, mode="max")
    other.load_state_dict(stopper.state_dict())
    assert other.state_dict() == {"best": 0.3, "bad_evals": 1}
    assert _run(other, [0.2, 0.2]) == _run(stopper, [0.2, 0.2]) == [False, True]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"patience": 0}, "patience must be >= 1"),
        ({"patience": -3}, "patience must be >= 1"),
        ({"patience": 2, "mode": "best"}, "mode must be 'min' or 'max'"),
        ({"patience": 2, "min_delta": -0.1}, "min_delta must be >= 0"),
    ],
)
def test_invalid_arguments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EarlyStopping(**kwargs)  # type: ignore[arg-type]


def test_history_callback_copies_metrics() -> None:
    history = HistoryCallback()
    metrics = {"loss": 1.0}
    history.on_step_end(None, metrics)  # type: ignore[arg-type]
    metrics["loss"] = 2.0  # the trainer reuses nothing, but a copy guards against it
    history.on_eval_end(None, {"val_loss": 0.5})  # type: ignore[arg-type]
    assert history.steps == [{"loss": 1.0}]
    assert history.evals == [{"val_loss": 0.5}]


def test_base_callback_hooks_are_no_ops() -> None:
    callback = Callback()
    assert callback.on_fit_start(None) is None  # type: ignore[arg-type, func-returns-value]
    assert callback.on_step_end(None, {}) is None  # type: ignore[arg-type, func-returns-value]
    assert callback.on_eval_end(None, {}) is None  # type: ignore[arg-type, func-returns-value]
    assert callback.on_fit_end(None) is None  # type: ignore[arg-type, func-returns-value]
