"""Tests for mlcraft.training.lr_finder: the lr sequence against torch's ExponentialLR and a
float64 formula, the smoothing against a non-recursive float64 sum, the stop on divergence,
the suggestion rule, restoring the model and the optimizer, and bad arguments."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from mlcraft.training.lr_finder import LRRangeTestResult, _steepest, lr_range_test


def _regression(n: int = 256, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    y = x @ torch.randn(8, 1, generator=g) + 0.1 * torch.randn(n, 1, generator=g)
    return TensorDataset(x, y)


def _net(seed: int = 0) -> nn.Sequential:
    """A plain MLP: its losses are a deterministic function of the batches and the lrs."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1))


def _bn_net(seed: int = 0) -> nn.Sequential:
    """With BatchNorm statistics and dropout: more state to restore."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 1))


def _loader(batch_size: int = 32) -> DataLoader[Any]:
    return DataLoader(_regression(), batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(0))


def _constant_loss(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Loss 1 with zero gradients: nothing moves, nothing diverges, whatever the lr."""
    return (out * 0.0).sum() + 1.0


def _run(
    model: nn.Module | None = None,
    optimizer: Any = None,
    loader: Any = None,
    loss_fn: Any = nn.functional.mse_loss,
    **kwargs: Any,
) -> LRRangeTestResult:
    settings: dict[str, Any] = {"start_lr": 1e-4, "end_lr": 10.0, "num_steps": 60, "smooth": 0.8}
    settings.update(kwargs)
    return lr_range_test(
        _net() if model is None else model,
        (lambda ps: torch.optim.SGD(ps, lr=0.123)) if optimizer is None else optimizer,
        _loader() if loader is None else loader,
        loss_fn,
        **settings,
    )


@pytest.mark.parametrize(("start", "end", "steps"), [(1e-7, 10.0, 100), (1e-3, 2e-3, 2), (0.5, 4.0, 17)])
def test_lr_sequence_equals_exponential_lr_and_the_float64_formula(start: float, end: float, steps: int) -> None:
    result = _run(start_lr=start, end_lr=end, num_steps=steps, loss_fn=_constant_loss)  # never stops early
    assert len(result.lrs) == steps
    formula = [start * math.exp(i * (math.log(end) - math.log(start)) / (steps - 1)) for i in range(steps)]
    torch.testing.assert_close(
        torch.tensor(result.lrs, dtype=torch.float64), torch.tensor(formula, dtype=torch.float64), rtol=1e-13, atol=0
    )
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=start)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=(end / start) ** (1 / (steps - 1)))
    reference = []
    for _ in range(steps):
        reference.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    torch.testing.assert_close(
        torch.tensor(result.lrs, dtype=torch.float64), torch.tensor(reference, dtype=torch.float64), rtol=1e-12, atol=0
    )
    assert result.lrs[0] == start
    assert result.lrs[-1] == pytest.approx(end, rel=1e-14)


def test_the_optimizer_really_runs_at_the_reported_lrs() -> None:
    """Spy on the optimizer: the lr in its param group at each step() is the reported one."""
    seen: list[float] = []

    class SpySGD(torch.optim.SGD):
        def step(self, closure: Any = None) -> Any:
            seen.append(self.param_groups[0]["lr"])
            assert all(g["lr"] == seen[-1] for g in self.param_groups)
            return super().step(closure)

    model = _net()
    groups: list[dict[str, Any]] = [
        {"params": list(model[0].parameters())},
        {"params": list(model[2].parameters()), "lr": 0.5},
    ]
    result = _run(model=model, optimizer=SpySGD(groups, lr=0.3))
    assert seen == result.lrs and len(seen) > 10


@pytest.mark.parametrize("smooth", [0.0, 0.5, 0.98])
def test_smoothing_is_the_bias_corrected_weighted_mean(smooth: float) -> None:
    result = _run(smooth=smooth)
    assert len(result.losses) > 10
    losses = torch.tensor(result.losses, dtype=torch.float64)
    for i in range(len(losses)):
        weights = torch.tensor([(1 - smooth) * smooth ** (i - j) for j in range(i + 1)], dtype=torch.float64)
        expected = float((weights * losses[: i + 1]).sum() / (1 - smooth ** (i + 1)))
        assert result.smoothed[i] == pytest.approx(expected, rel=1e-12), f"step {i}"
    if smooth == 0.0:
        assert result.smoothed == result.losses


def test_losses_are_the_batch_losses_before_each_update() -> None:
    """Replay the test by hand (same weights, batches in the same order, the reported lrs) and
    compare the losses exactly: each loss is the batch loss before that step's update."""

    def plain() -> nn.Module:
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1))

    batches = list(DataLoader(_regression(), batch_size=32))  # 8 batches, fixed order, restarted
    result = _run(
        model=plain(), loader=batches, optimizer=lambda ps: torch.optim.SGD(ps, lr=0.0, momentum=0.9), num_steps=30
    )
    model = plain()
    opt = torch.optim.SGD(model.parameters(), lr=0.0, momentum=0.9)
    expected = []
    for i, lr in enumerate(result.lrs):
        x, y = batches[i % len(batches)]
        opt.param_groups[0]["lr"] = lr
        loss = nn.functional.mse_loss(model(x), y)
        expected.append(loss.item())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    assert result.losses == expected
    assert len(result.losses) > 10 and result.losses[-1] != result.losses[0]


def test_stops_on_divergence_at_the_first_step_over_the_threshold() -> None:
    result = _run(start_lr=1e-3, end_lr=1e4, num_steps=200, smooth=0.9, diverge_factor=4.0)
    assert all(math.isfinite(v) for v in result.smoothed), "stopped by the factor, before any inf/NaN"
    assert result.diverged and len(result.lrs) < 200
    best = math.inf
    for i, value in enumerate(result.smoothed):
        over = not math.isfinite(value) or value > 4.0 * best
        assert over == (i == len(result.smoothed) - 1), f"step {i}: stop rule"
        best = min(best, value)


def test_no_divergence_runs_every_step() -> None:
    result = _run(start_lr=1e-6, end_lr=1e-3, num_steps=25)
    assert not result.diverged and len(result.lrs) == len(result.losses) == len(result.smoothed) == 25


def test_nan_loss_stops_the_test() -> None:
    def nan_after_three(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        nan_after_three.calls += 1  # type: ignore[attr-defined]
        loss = nn.functional.mse_loss(out, target)
        return loss * math.nan if nan_after_three.calls > 3 else loss  # type: ignore[attr-defined]

    nan_after_three.calls = 0  # type: ignore[attr-defined]
    result = lr_range_test(
        _net(),
        lambda ps: torch.optim.SGD(ps, lr=0.1),
        _loader(),
        nan_after_three,
        start_lr=1e-4,
        end_lr=1e-2,
        num_steps=20,
    )
    assert result.diverged and len(result.losses) == 4 and math.isnan(result.losses[-1])
    assert (
        result.min_loss_lr in result.lrs[:3]
        and math.isfinite(result.suggested_lr)
        and result.steepest_lr in result.lrs[:3]
    )


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_a_non_finite_first_loss_raises_after_restoring(bad: float) -> None:
    """Before the fix: suggested_lr = start_lr / 10, outside the tested range, with only a warning."""
    model = _bn_net()
    before = copy.deepcopy(model.state_dict())
    opt = torch.optim.SGD(model.parameters(), lr=0.3)

    def broken(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return nn.functional.mse_loss(out, target) * bad

    with pytest.raises(ValueError, match=rf"the first loss is {bad}, computed at the initial weights"):
        _run(model=model, optimizer=opt, loss_fn=broken)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), f"{key} not restored before raising"
    assert opt.param_groups[0]["lr"] == 0.3 and not opt.state


def test_model_and_optimizer_are_restored() -> None:
    model = _bn_net()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.01)
    for x, y in _loader():  # some real state: Adam moments, step counts, BatchNorm statistics
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    model[1].eval()  # a submodule deliberately in eval mode: must stay so
    model_before = copy.deepcopy(model.state_dict())
    opt_before = copy.deepcopy(opt.state_dict())
    modes_before = [m.training for m in model.modules()]

    result = _run(model=model, optimizer=opt, start_lr=1e-3, end_lr=1e3, num_steps=60)
    assert result.diverged, "a run that diverged changed the weights a lot: the restore must undo it"

    for key, value in model.state_dict().items():
        assert torch.equal(value, model_before[key]), f"model {key} not restored"
    assert [m.training for m in model.modules()] == modes_before
    assert all(p.grad is None for p in model.parameters())
    after = opt.state_dict()
    assert after["param_groups"] == opt_before["param_groups"], "lrs and hyper-parameters restored"
    for index, state in opt_before["state"].items():
        for key, value in state.items():
            assert torch.equal(after["state"][index][key], value), f"optimizer state {index}/{key} not restored"
    assert opt.param_groups[0]["lr"] == 3e-4


def test_restored_even_when_the_loss_raises() -> None:
    model = _bn_net()
    before = copy.deepcopy(model.state_dict())

    def exploding(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        exploding.calls += 1  # type: ignore[attr-defined]
        if exploding.calls > 5:  # type: ignore[attr-defined]
            raise RuntimeError("boom")
        return nn.functional.mse_loss(out, target)

    exploding.calls = 0  # type: ignore[attr-defined]
    with pytest.raises(RuntimeError, match="boom"):
        lr_range_test(
            model, lambda ps: torch.optim.SGD(ps, lr=0.1), _loader(), exploding, start_lr=0.1, end_lr=1.0, num_steps=10
        )
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), f"{key} not restored after an exception"


def test_short_loader_is_restarted_and_one_shot_iterators_are_refused() -> None:
    batches = list(_loader())[:3]
    assert len(_run(loader=batches, num_steps=10, loss_fn=_constant_loss).lrs) == 10

    def once() -> Iterator[Any]:
        yield from batches

    with pytest.raises(ValueError, match="ran out after 3 batches"):
        _run(loader=once(), num_steps=10, loss_fn=_constant_loss)
    with pytest.raises(ValueError, match="no batch"):
        _run(loader=[], num_steps=10)


def test_steepest_is_the_steepest_descent_before_the_minimum() -> None:
    lrs = [10.0**e for e in range(-6, 1)]  # equal steps in log(lr)
    smoothed = [2.0, 1.9, 1.2, 0.9, 0.8, 0.3, 5.0]  # falls 0.1, 0.7, 0.3, 0.1, 0.5: steepest from index 1
    assert _steepest(lrs, smoothed) == lrs[1]
    uneven = [1e-6, 1e-5, 2e-5, 1e-3]  # the slope is per unit of log(lr), not per step
    assert _steepest(uneven, [3.0, 2.0, 1.5, 0.5]) == uneven[1]  # 0.5/ln 2 = 0.72 beats 1/ln 10 = 0.43
    # a steeper fall after the minimum (recovery from a spike) does not count
    assert _steepest(lrs, [2.0, 1.9, 1.2, 0.9, 3.0, 0.95]) == lrs[1]
    assert _steepest(lrs, [1.0, 1.5, 2.0]) == lrs[0]  # never falls: the start


def test_suggestion_is_a_tenth_of_the_smoothed_minimum() -> None:
    result = _run()
    i_min = min(range(len(result.smoothed)), key=result.smoothed.__getitem__)
    assert result.min_loss_lr == result.lrs[i_min]
    assert result.suggested_lr == result.min_loss_lr / 10
    assert result.steepest_lr in result.lrs[:i_min]
    assert result.suggested_lr < result.min_loss_lr and result.steepest_lr < result.min_loss_lr


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start_lr": 0.0}, "start_lr"),
        ({"start_lr": 1.0, "end_lr": 1.0}, "start_lr"),
        ({"start_lr": 1.0, "end_lr": 0.1}, "start_lr"),
        ({"end_lr": math.inf}, "start_lr"),
        ({"start_lr": math.nan}, "start_lr"),
        ({"num_steps": 1}, "num_steps"),
        ({"num_steps": 2.5}, "num_steps"),
        ({"num_steps": True}, "num_steps"),
        ({"smooth": 1.0}, "smooth"),
        ({"smooth": -0.1}, "smooth"),
        ({"diverge_factor": 1.0}, "diverge_factor"),
        ({"diverge_factor": math.nan}, "diverge_factor"),
    ],
)
def test_bad_arguments_raise(kwargs: dict[str, Any], message: str) -> None:
    model = _bn_net()
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(ValueError, match=message):
        _run(model=model, **kwargs)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
