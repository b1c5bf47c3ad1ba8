"""Tests for mlcraft.training.schedules against torch's own LR schedulers."""

from __future__ import annotations

import itertools
import math
import warnings

import pytest
import torch
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, LRScheduler, SequentialLR

from mlcraft.training.schedules import build_scheduler, lr_multiplier

BASE_LR = 0.1
REL_TOL = 1e-12

# (warmup_steps, total_steps, min_lr_ratio); warmup < total so the oracle's cosine has T_max >= 1.
CASES = [(1, 10, 0.0), (3, 20, 0.1), (4, 5, 0.0), (2, 3, 1.0), (5, 37, 0.25), (10, 200, 0.05), (1, 2, 0.3)]


def _optimizer(lr: float = BASE_LR) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=lr)


def _oracle(optimizer: torch.optim.Optimizer, warmup: int, total: int, ratio: float) -> LRScheduler:
    base = optimizer.param_groups[0]["lr"]
    cosine = CosineAnnealingLR(optimizer, T_max=total - warmup, eta_min=ratio * base)
    if warmup == 0:
        return cosine
    linear = LinearLR(optimizer, start_factor=1 / warmup, end_factor=1.0, total_iters=warmup - 1)
    return SequentialLR(optimizer, [linear, cosine], milestones=[warmup])


def _lrs(optimizer: torch.optim.Optimizer, scheduler: LRScheduler, steps: int) -> list[float]:
    """The lr each of ``steps`` optimizer steps runs at (scheduler stepped after each)."""
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SequentialLR's deprecation chatter
        for _ in range(steps):
            out.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
    return out


def _assert_rel_close(actual: list[float], expected: list[float]) -> None:
    assert len(actual) == len(expected)
    for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
        assert abs(a - e) <= REL_TOL * abs(e), f"step {i}: {a!r} vs oracle {e!r}"


@pytest.mark.parametrize(("warmup", "total", "ratio"), CASES)
def test_lr_multiplier_matches_torch_sequential_lr(warmup: int, total: int, ratio: float) -> None:
    opt = _optimizer()
    expected = _lrs(opt, _oracle(opt, warmup, total, ratio), total + 1)
    actual = [
        BASE_LR * lr_multiplier(s, warmup_steps=warmup, total_steps=total, min_lr_ratio=ratio) for s in range(total + 1)
    ]
    _assert_rel_close(actual, expected)


@pytest.mark.parametrize(("warmup", "total", "ratio"), CASES)
def test_build_scheduler_matches_torch_sequential_lr(warmup: int, total: int, ratio: float) -> None:
    opt_ref, opt = _optimizer(), _optimizer()
    expected = _lrs(opt_ref, _oracle(opt_ref, warmup, total, ratio), total + 1)
    scheduler = build_scheduler(opt, warmup_steps=warmup, total_steps=total, min_lr_ratio=ratio)
    assert isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR)
    _assert_rel_close(_lrs(opt, scheduler, total + 1), expected)


@pytest.mark.parametrize(("total", "ratio"), [(1, 0.0), (17, 0.2), (50, 0.0)])
def test_no_warmup_equals_plain_cosine_annealing(total: int, ratio: float) -> None:
    opt_ref, opt = _optimizer(), _optimizer()
    expected = _lrs(opt_ref, CosineAnnealingLR(opt_ref, T_max=total, eta_min=ratio * BASE_LR), total + 1)
    actual = _lrs(opt, build_scheduler(opt, warmup_steps=0, total_steps=total, min_lr_ratio=ratio), total + 1)
    _assert_rel_close(actual, expected)
    assert actual[0] == BASE_LR  # the first step runs at the peak


def test_warmup_values_by_hand() -> None:
    got = [lr_multiplier(s, warmup_steps=4, total_steps=10) for s in range(4)]
    assert got == [0.25, 0.5, 0.75, 1.0]  # the first step already moves; step w-1 is at the peak


def test_cosine_midpoint_and_end() -> None:
    # t = 1/2 halfway through the decay: (1 + cos(pi/2)) / 2 = 1/2 of the way from min to peak.
    assert lr_multiplier(7, warmup_steps=2, total_steps=12, min_lr_ratio=0.2) == pytest.approx(0.6, rel=1e-15)
    assert lr_multiplier(12, warmup_steps=2, total_steps=12, min_lr_ratio=0.2) == pytest.approx(0.2, rel=1e-15)


def test_constant_schedule_after_warmup() -> None:
    values = [
        lr_multiplier(s, warmup_steps=3, total_steps=10, schedule="constant", min_lr_ratio=0.5) for s in range(20)
    ]
    assert values[:3] == pytest.approx([1 / 3, 2 / 3, 1.0], rel=1e-15)
    assert values[3:] == [1.0] * 17  # flat, also past total_steps; min_lr_ratio does not apply


def test_constant_schedule_through_build_scheduler() -> None:
    opt = _optimizer()
    lrs = _lrs(opt, build_scheduler(opt, warmup_steps=2, total_steps=6, schedule="constant"), 10)
    assert lrs == pytest.approx([0.05, 0.1, *([0.1] * 8)], rel=1e-15)


@pytest.mark.parametrize(("warmup", "total", "ratio"), [(0, 10, 0.0), (3, 10, 0.1), (10, 10, 0.3), (0, 1, 0.5)])
def test_stays_at_min_after_total_steps(warmup: int, total: int, ratio: float) -> None:
    for step in [total, total + 1, total + 7, 10 * total + 3]:
        assert lr_multiplier(step, warmup_steps=warmup, total_steps=total, min_lr_ratio=ratio) == pytest.approx(
            ratio, abs=1e-15
        )
    opt = _optimizer()
    lrs = _lrs(opt, build_scheduler(opt, warmup_steps=warmup, total_steps=total, min_lr_ratio=ratio), 3 * total + 5)
    assert lrs[total:] == pytest.approx([ratio * BASE_LR] * (2 * total + 5), abs=1e-15)


def test_monotone_decay_after_warmup() -> None:
    values = [lr_multiplier(s, warmup_steps=5, total_steps=50, min_lr_ratio=0.1) for s in range(5, 51)]
    assert all(a > b for a, b in itertools.pairwise(values))
    assert values[0] == 1.0


def test_warmup_equal_to_total_ends_at_min() -> None:
    values = [lr_multiplier(s, warmup_steps=4, total_steps=4, min_lr_ratio=0.25) for s in range(6)]
    assert values == pytest.approx([0.25, 0.5, 0.75, 1.0, 0.25, 0.25], rel=1e-15)


def test_scheduler_sets_initial_lr_to_first_multiplier() -> None:
    opt = _optimizer(0.4)
    build_scheduler(opt, warmup_steps=4, total_steps=10)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1, rel=1e-15)
    assert opt.param_groups[0]["initial_lr"] == 0.4


def test_scheduler_state_dict_round_trip_continues_identically() -> None:
    opt_a = _optimizer()
    sched_a = build_scheduler(opt_a, warmup_steps=3, total_steps=20, min_lr_ratio=0.1)
    _lrs(opt_a, sched_a, 7)
    opt_b = _optimizer()
    sched_b = build_scheduler(opt_b, warmup_steps=3, total_steps=20, min_lr_ratio=0.1)
    opt_b.load_state_dict(opt_a.state_dict())
    sched_b.load_state_dict(sched_a.state_dict())
    assert _lrs(opt_b, sched_b, 10) == _lrs(opt_a, sched_a, 10)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"step": -1}, "need step >= 0"),
        ({"warmup_steps": -1}, "need step >= 0"),
        ({"total_steps": 0}, "total_steps >= 1"),
        ({"total_steps": -5}, "total_steps >= 1"),
        ({"warmup_steps": 11, "total_steps": 10}, r"warmup_steps \(11\) exceeds total_steps \(10\)"),
        ({"min_lr_ratio": -0.1}, r"min_lr_ratio must be in \[0, 1\]"),
        ({"min_lr_ratio": 1.5}, r"min_lr_ratio must be in \[0, 1\]"),
        ({"min_lr_ratio": math.nan}, r"min_lr_ratio must be in \[0, 1\]"),
        ({"schedule": "linear", "step": 5}, "unknown schedule 'linear'"),
    ],
)
def test_lr_multiplier_invalid_args(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"step": 3, "warmup_steps": 2, "total_steps": 10}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        lr_multiplier(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"warmup_steps": 11, "total_steps": 10}, "exceeds total_steps"),
        ({"total_steps": 0}, "total_steps >= 1"),
        ({"min_lr_ratio": 2.0}, "min_lr_ratio"),
        ({"warmup_steps": 0, "schedule": "linear"}, "unknown schedule"),
    ],
)
def test_build_scheduler_validates_eagerly(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"warmup_steps": 2, "total_steps": 10}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        build_scheduler(_optimizer(), **args)  # type: ignore[arg-type]


def test_build_scheduler_rejects_unknown_schedule_during_warmup() -> None:
    with pytest.raises(ValueError, match="unknown schedule"):
        build_scheduler(_optimizer(), warmup_steps=5, total_steps=10, schedule="linear")  # type: ignore[arg-type]


def test_lr_multiplier_rejects_unknown_schedule_during_warmup() -> None:
    with pytest.raises(ValueError, match="unknown schedule"):
        lr_multiplier(0, warmup_steps=5, total_steps=10, schedule="linear")  # type: ignore[arg-type]
