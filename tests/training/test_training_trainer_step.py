"""Trainer optimizer steps: gradient accumulation, clipping and non-finite gradients,
each checked against an update computed by hand in float64."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from typing import Any, TypedDict

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn
from torch.utils.data import TensorDataset

from mlcraft.classroom.testing import assert_close
from mlcraft.config.training import TrainingConfig
from mlcraft.training import Trainer, lr_multiplier
from mlcraft.training import trainer as trainer_module


class Tolerances(TypedDict):
    rtol: float
    atol: float


TIGHT: Tolerances = {"rtol": 1e-12, "atol": 1e-14}

ConfigFactory = Callable[..., TrainingConfig]


def _data(n: int, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g, dtype=torch.float64)
    w = torch.randn(3, 2, generator=g, dtype=torch.float64)
    y = torch.tanh(x @ w) + 0.1 * torch.randn(n, 2, generator=g, dtype=torch.float64)
    return TensorDataset(x, y)


def _mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2)).double()


def _params(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def _grads(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    loss = F.mse_loss(model(x), y)
    return list(torch.autograd.grad(loss, list(model.parameters())))


def _sgd_step(model: nn.Module, grads: list[torch.Tensor], lr: float) -> None:
    # Typed as plain tensors: ``-=`` on a Parameter is typed as returning a Tensor.
    params: Iterator[torch.Tensor] = model.parameters()
    with torch.no_grad():
        for p, g in zip(params, grads, strict=True):
            p -= lr * g


def _cat(batches: list[Any]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])


def _trainer(model: nn.Module, cfg: TrainingConfig, data: TensorDataset, **kwargs: Any) -> Trainer:
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr)
    return Trainer(model, cfg, data, F.mse_loss, optimizer=optimizer, device="cpu", **kwargs)


# --------------------------------------------------------------------------- accumulation


def test_accumulated_step_equals_one_big_batch_step(make_config: ConfigFactory) -> None:
    cfg = make_config(lr=0.3, batch_size=8, accumulation_steps=4, grad_clip_norm=None, schedule="constant", max_steps=1)
    data = _data(64)
    model = _mlp()
    reference = copy.deepcopy(model)
    trainer = _trainer(model, cfg, data)
    batches = list(trainer._train_loader(0))
    assert [len(b[0]) for b in batches] == [8] * 8
    big_x, big_y = _cat(batches[:4])
    # The loader shuffles: the first group is not simply the first 32 samples.
    assert not torch.equal(big_x, data.tensors[0][:32])

    history = trainer.fit()
    assert trainer.state.step == 1 and len(history) == 1
    _sgd_step(reference, _grads(reference, big_x, big_y), cfg.lr)
    for actual, expected in zip(model.parameters(), reference.parameters(), strict=True):
        assert_close(actual.detach(), expected.detach(), **TIGHT)
    # The logged loss is the mean of the micro-batch losses: the big-batch loss before the update.
    with torch.no_grad():
        before = F.mse_loss(_mlp()(big_x), big_y).item()
    assert history[0]["loss"] == pytest.approx(before, rel=1e-6)  # logged in float32


def test_last_incomplete_group_divides_by_its_real_size(make_config: ConfigFactory) -> None:
    # 80 samples / 8 = 10 micro-batches; accumulation 4 -> groups of 4, 4 and 2.
    cfg = make_config(lr=0.3, batch_size=8, accumulation_steps=4, grad_clip_norm=None, schedule="constant", epochs=1)
    data = _data(80, seed=1)
    model = _mlp(seed=1)
    reference = copy.deepcopy(model)
    trainer = _trainer(model, cfg, data)
    assert trainer.total_steps == 3
    batches = list(trainer._train_loader(0))
    assert len(batches) == 10
    for step, group in enumerate([batches[0:4], batches[4:8], batches[8:10]], start=1):
        trainer.fit(until_step=step)
        assert trainer.state.step == step
        _sgd_step(reference, _grads(reference, *_cat(group)), cfg.lr)
        for actual, expected in zip(model.parameters(), reference.parameters(), strict=True):
            assert_close(actual.detach(), expected.detach(), **TIGHT, msg=f"after step {step}")
    # The pause fell on the epoch's last batch, so the epoch is already closed; fit() has nothing left.
    assert (trainer.state.epoch, trainer.state.batches_done) == (1, 0)
    after = _params(model)
    trainer.fit()
    assert (trainer.state.epoch, trainer.state.batches_done, trainer.state.step) == (1, 0, 3)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), after, strict=True))


def test_accumulation_with_uneven_last_micro_batch_weights_by_group(make_config: ConfigFactory) -> None:
    """28 samples, batch 8, accumulation 2: groups (8, 8) and (8, 4). The second step averages the
    two micro-batch means (documented: exact only for equal-sized micro-batches)."""
    cfg = make_config(lr=0.2, batch_size=8, accumulation_steps=2, grad_clip_norm=None, schedule="constant", epochs=1)
    data = _data(28, seed=2)
    model = _mlp(seed=2)
    reference = copy.deepcopy(model)
    trainer = _trainer(model, cfg, data)
    batches = list(trainer._train_loader(0))
    assert [len(b[0]) for b in batches] == [8, 8, 8, 4]
    trainer.fit()
    for group in (batches[0:2], batches[2:4]):
        grads = [
            (g1 + g2) / 2 for g1, g2 in zip(_grads(reference, *group[0]), _grads(reference, *group[1]), strict=True)
        ]
        _sgd_step(reference, grads, cfg.lr)
    for actual, expected in zip(model.parameters(), reference.parameters(), strict=True):
        assert_close(actual.detach(), expected.detach(), **TIGHT)


def test_total_steps_and_default_optimizer(make_config: ConfigFactory) -> None:
    data = _data(80)
    cfg = make_config(lr=0.01, weight_decay=0.1, batch_size=8, accumulation_steps=4, epochs=3, warmup_steps=1000)
    trainer = Trainer(_mlp(), cfg, data, F.mse_loss, device="cpu")
    assert trainer.total_steps == 9  # 3 epochs * ceil(10 / 4)
    assert isinstance(trainer.optimizer, torch.optim.AdamW)
    assert trainer.optimizer.param_groups[0]["weight_decay"] == 0.1
    # warmup_steps (1000) is clamped to total_steps: the first step runs at lr / 9.
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.01 / 9, rel=1e-15)
    assert (
        Trainer(
            _mlp(), cfg.model_copy(update={"max_steps": 5, "warmup_steps": 0}), data, F.mse_loss, device="cpu"
        ).total_steps
        == 5
    )
    dropped = cfg.model_copy(update={"drop_last": True, "batch_size": 7})  # 80 / 7 -> 11 full batches
    assert Trainer(_mlp(), dropped, data, F.mse_loss, device="cpu").total_steps == 3 * 3


def test_history_lr_follows_the_schedule(make_config: ConfigFactory) -> None:
    cfg = make_config(lr=0.05, batch_size=8, warmup_steps=3, min_lr_ratio=0.1, epochs=2, grad_clip_norm=None)
    trainer = _trainer(_mlp(), cfg, _data(40))
    history = trainer.fit()
    assert trainer.total_steps == 10 and len(history) == 10
    expected = [cfg.lr * lr_multiplier(s, warmup_steps=3, total_steps=10, min_lr_ratio=0.1) for s in range(10)]
    assert [h["lr"] for h in history] == pytest.approx(expected, rel=1e-12)
    assert [h["step"] for h in history] == [float(s) for s in range(1, 11)]
    assert [h["epoch"] for h in history] == [0.0] * 5 + [1.0] * 5
    assert trainer.scheduler.last_epoch == 10


# --------------------------------------------------------------------------- clipping


@pytest.mark.parametrize("max_norm", [1e-3, 0.05])
def test_clipping_scales_update_to_max_norm_and_logs_pre_clip_norm(make_config: ConfigFactory, max_norm: float) -> None:
    cfg = make_config(lr=0.5, batch_size=16, grad_clip_norm=max_norm, schedule="constant", max_steps=1)
    data = _data(32, seed=3)
    model = _mlp(seed=3)
    before = _params(model)
    reference = copy.deepcopy(model)
    trainer = _trainer(model, cfg, data)
    x, y = next(iter(trainer._train_loader(0)))
    history = trainer.fit()

    grads = _grads(reference, x, y)
    norm = math.sqrt(sum(float((g**2).sum()) for g in grads))
    assert norm > 10 * max_norm  # the clip really is active
    assert history[0]["grad_norm"] == pytest.approx(norm, rel=1e-12)  # pre-clip norm is logged

    deltas = [after.detach() - b for after, b in zip(model.parameters(), before, strict=True)]
    delta_norm = math.sqrt(sum(float((d**2).sum()) for d in deltas))
    # clip_grad_norm_ scales by max_norm / (norm + 1e-6): the step has length lr * max_norm up to that eps.
    assert delta_norm == pytest.approx(cfg.lr * max_norm * norm / (norm + 1e-6), rel=1e-10)
    assert delta_norm == pytest.approx(cfg.lr * max_norm, rel=1e-5)
    for d, g in zip(deltas, grads, strict=True):  # same direction as the gradient
        assert_close(d, -cfg.lr * max_norm / (norm + 1e-6) * g, rtol=1e-9, atol=1e-15)


def test_no_clipping_below_max_norm(make_config: ConfigFactory) -> None:
    cfg = make_config(lr=0.5, batch_size=16, grad_clip_norm=1e6, schedule="constant", max_steps=1)
    data = _data(32, seed=4)
    model = _mlp(seed=4)
    reference = copy.deepcopy(model)
    trainer = _trainer(model, cfg, data)
    x, y = next(iter(trainer._train_loader(0)))
    trainer.fit()
    _sgd_step(reference, _grads(reference, x, y), cfg.lr)
    for actual, expected in zip(model.parameters(), reference.parameters(), strict=True):
        assert_close(actual.detach(), expected.detach(), **TIGHT)


# --------------------------------------------------------------------------- non-finite gradients


class _PoisonedLoss:
    """MSE, multiplied by ``poison`` (inf or NaN) on the calls whose index is in ``bad``."""

    def __init__(self, bad: Callable[[int], bool], poison: float) -> None:
        self.bad, self.poison, self.calls = bad, poison, 0

    def __call__(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        loss = F.mse_loss(outputs, targets)
        index, self.calls = self.calls, self.calls + 1
        return loss * self.poison if self.bad(index) else loss


@pytest.mark.parametrize("poison", [math.nan, math.inf])
def test_non_finite_update_is_skipped_and_training_continues(make_config: ConfigFactory, poison: float) -> None:
    cfg = make_config(lr=0.2, batch_size=4, warmup_steps=3, schedule="constant", grad_clip_norm=None, max_steps=4)
    data = _data(24, seed=5)
    model = _mlp(seed=5)
    reference = copy.deepcopy(model)
    loss_fn = _PoisonedLoss(lambda i: i == 1, poison)
    trainer = Trainer(model, cfg, data, loss_fn, optimizer=torch.optim.SGD(model.parameters(), lr=cfg.lr), device="cpu")

    snapshots: list[tuple[tuple[float, bool], list[torch.Tensor], int]] = []
    update = trainer._update

    def spy() -> tuple[float, bool]:
        result = update()
        snapshots.append((result, _params(model), trainer.scheduler.last_epoch))
        assert all(p.grad is None for p in model.parameters())  # grads cleared, skipped or not
        return result

    trainer._update = spy  # type: ignore[method-assign]  # deliberately wraps the method with a spy
    batches = list(trainer._train_loader(0))
    history = trainer.fit()

    assert [s[0][1] for s in snapshots] == [False, True, False, False, False]
    assert not math.isfinite(snapshots[1][0][0])  # the logged norm is the non-finite one
    for a, b in zip(snapshots[1][1], snapshots[0][1], strict=True):
        assert torch.equal(a, b)  # parameters untouched by the skipped update
    assert [s[2] for s in snapshots] == [1, 1, 2, 3, 4]  # the scheduler did not advance on the skip
    assert trainer.state.step == 4 and trainer.state.skipped_steps == 1
    assert [h["skipped"] for h in history] == [0.0, 1.0, 0.0, 0.0, 0.0]
    assert history[1]["lr"] == history[2]["lr"] == pytest.approx(cfg.lr * 2 / 3, rel=1e-15)

    # Reference: plain SGD on every batch but the poisoned one, at the warmup lrs 1/3, 2/3, 1, 1.
    for step, batch in enumerate([batches[0], batches[2], batches[3], batches[4]]):
        lr = cfg.lr * lr_multiplier(step, warmup_steps=3, total_steps=4, schedule="constant")
        _sgd_step(reference, _grads(reference, *batch), lr)
    for actual, expected in zip(model.parameters(), reference.parameters(), strict=True):
        assert torch.isfinite(actual).all()
        assert_close(actual.detach(), expected.detach(), **TIGHT)


def test_poison_inside_accumulation_group_skips_the_whole_group(make_config: ConfigFactory) -> None:
    cfg = make_config(lr=0.2, batch_size=4, accumulation_steps=2, schedule="constant", grad_clip_norm=None, max_steps=2)
    data = _data(32, seed=6)
    model = _mlp(seed=6)
    reference = copy.deepcopy(model)
    trainer = Trainer(
        model,
        cfg,
        data,
        _PoisonedLoss(lambda i: i == 0, math.nan),
        optimizer=torch.optim.SGD(model.parameters(), lr=cfg.lr),
        device="cpu",
    )
    batches = list(trainer._train_loader(0))
    trainer.fit()
    assert trainer.state.skipped_steps == 1 and trainer.state.step == 2
    for group in (batches[2:4], batches[4:6]):  # micro-batch 1's clean gradient was discarded too
        _sgd_step(reference, _grads(reference, *_cat(group)), cfg.lr)
    for actual, expected in zip(model.parameters(), reference.parameters(), strict=True):
        assert_close(actual.detach(), expected.detach(), **TIGHT)


def test_consecutive_non_finite_updates_raise(make_config: ConfigFactory) -> None:
    cfg = make_config(lr=0.1, batch_size=1, schedule="constant", max_steps=3)
    model = _mlp()
    before = _params(model)
    trainer = Trainer(model, cfg, _data(8), _PoisonedLoss(lambda i: True, math.nan), device="cpu")
    with pytest.raises(RuntimeError, match=r"inf/NaN for 100 consecutive steps at step 0"):
        trainer.fit()
    assert trainer.state.skipped_steps == trainer_module.MAX_CONSECUTIVE_SKIPS == 100
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), before, strict=True))


def test_ninety_nine_consecutive_skips_are_tolerated(make_config: ConfigFactory) -> None:
    cfg = make_config(lr=0.1, batch_size=1, schedule="constant", max_steps=2)
    trainer = Trainer(_mlp(), cfg, _data(8), _PoisonedLoss(lambda i: i < 99, math.inf), device="cpu")
    trainer.fit()
    assert trainer.state.skipped_steps == 99 and trainer.state.step == 2
