"""Exact resume: a run paused and resumed from last.pt (fresh process state, freshly initialized
model) produces bitwise the same losses and final parameters as the uninterrupted run (CPU,
deterministic mode)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn
from torch.utils.data import TensorDataset

from mlcraft.config.training import TrainingConfig
from mlcraft.training import Trainer, load_checkpoint

ConfigFactory = Callable[..., TrainingConfig]

# 44 samples / batch 4 = 11 micro-batches per epoch; accumulation 2 -> 6 steps per epoch
# (the last group has a single micro-batch); 3 epochs -> 18 steps.
STEPS_PER_EPOCH = 6
EPOCHS = 3


def _data(n: int, seed: int) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    y = torch.sin(x[:, :2] * 1.5) + 0.1 * torch.randn(n, 2, generator=g)
    return TensorDataset(x, y)


def _model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 32), nn.Tanh(), nn.Dropout(0.3), nn.Linear(32, 2))


def _config(make_config: ConfigFactory, checkpoint_dir: Path, **overrides: Any) -> TrainingConfig:
    values: dict[str, Any] = {
        "lr": 3e-2,
        "weight_decay": 0.01,
        "batch_size": 4,
        "epochs": EPOCHS,
        "accumulation_steps": 2,
        "warmup_steps": 4,
        "schedule": "cosine",
        "min_lr_ratio": 0.1,
        "grad_clip_norm": 0.5,
        "deterministic": True,
        "seed": 17,
        "checkpoint_dir": checkpoint_dir,
    }
    values.update(overrides)
    return make_config(**values)


def _trainer(cfg: TrainingConfig, model_seed: int) -> Trainer:
    return Trainer(_model(model_seed), cfg, _data(44, seed=1), F.mse_loss, val_data=_data(13, seed=2), device="cpu")


def _column(history: list[dict[str, float]], key: str) -> list[float]:
    return [h[key] for h in history]


def _assert_same_run(a: Trainer, b_histories: list[list[dict[str, float]]], b: Trainer) -> None:
    b_history = [h for part in b_histories for h in part]
    assert len(b_history) == len(a.history) == STEPS_PER_EPOCH * EPOCHS
    for key in ("loss", "lr", "grad_norm", "step", "epoch"):
        assert _column(b_history, key) == _column(a.history, key), key  # bitwise: plain float ==
    for pa, pb in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert b.state == a.state
    assert [e["val_loss"] for e in b.eval_history] == [e["val_loss"] for e in a.eval_history][-len(b.eval_history) :]


@pytest.fixture
def uninterrupted(make_config: ConfigFactory, tmp_path: Path) -> Trainer:
    trainer = _trainer(_config(make_config, tmp_path / "a"), model_seed=0)
    trainer.fit()
    assert trainer.state.epoch == EPOCHS and len(trainer.eval_history) == EPOCHS
    # The run really is stochastic: dropout draws and data order move the losses around.
    assert len(set(_column(trainer.history, "loss"))) == len(trainer.history)
    return trainer


@pytest.mark.parametrize(
    "pause_at",
    [
        pytest.param(3, id="mid-epoch-0"),
        pytest.param(STEPS_PER_EPOCH, id="epoch-boundary-1"),
        pytest.param(STEPS_PER_EPOCH + 2, id="mid-epoch-1"),
        pytest.param(2 * STEPS_PER_EPOCH, id="epoch-boundary-2"),
    ],
)
def test_resume_from_checkpoint_is_bitwise_exact(
    make_config: ConfigFactory, tmp_path: Path, uninterrupted: Trainer, pause_at: int
) -> None:
    cfg = _config(make_config, tmp_path / "b")
    first = _trainer(cfg, model_seed=0)
    part_one = list(first.fit(until_step=pause_at))
    assert first.state.step == pause_at
    saved = load_checkpoint(tmp_path / "b" / "last.pt")
    assert saved["state"]["step"] == pause_at

    # Scramble the process state between the runs, as a new process would have.
    torch.manual_seed(12345)
    torch.rand(100)
    second = _trainer(cfg, model_seed=99)  # a differently initialized model
    assert not all(torch.equal(p, q) for p, q in zip(second.model.parameters(), first.model.parameters(), strict=True))
    second.load_checkpoint(tmp_path / "b" / "last.pt")
    assert second.state.step == pause_at
    part_two = second.fit()
    assert part_two is second.history and len(part_two) == STEPS_PER_EPOCH * EPOCHS - pause_at
    assert [*first.eval_history, *second.eval_history] == uninterrupted.eval_history
    _assert_same_run(uninterrupted, [part_one, part_two], second)


@pytest.mark.parametrize("pause_at", [4, STEPS_PER_EPOCH])
def test_pause_and_continue_in_the_same_trainer_is_bitwise_exact(
    make_config: ConfigFactory, tmp_path: Path, uninterrupted: Trainer, pause_at: int
) -> None:
    trainer = _trainer(_config(make_config, tmp_path / "c"), model_seed=0)
    part_one = list(trainer.fit(until_step=pause_at))
    history = trainer.fit()
    assert history[:pause_at] == part_one
    assert [*trainer.eval_history] == uninterrupted.eval_history
    _assert_same_run(uninterrupted, [history], trainer)


def test_resume_with_a_different_config_is_refused(make_config: ConfigFactory, tmp_path: Path) -> None:
    cfg = _config(make_config, tmp_path)
    _trainer(cfg, model_seed=0).fit(until_step=2)
    other = _trainer(cfg.model_copy(update={"lr": 1e-3}), model_seed=0)
    with pytest.raises(ValueError, match=r"checkpoint was trained with different lr;"):
        other.load_checkpoint(tmp_path / "last.pt")
    assert other.state.step == 0


def test_checkpoint_is_weights_only_and_complete(make_config: ConfigFactory, tmp_path: Path) -> None:
    cfg = _config(make_config, tmp_path)
    trainer = _trainer(cfg, model_seed=0)
    trainer.fit(until_step=3)
    payload = torch.load(tmp_path / "last.pt", weights_only=True)  # no pickled code needed
    assert set(payload) == {
        "format_version",
        "model",
        "optimizer",
        "scaler",
        "scheduler",
        "early_stopping",
        "state",
        "rng",
        "config",
    }
    assert payload["state"] == {
        "step": 3,
        "epoch": 0,
        "batches_done": 6,
        "best_metric": None,
        "skipped_steps": 0,
        "stopped_early": False,
    }
    assert payload["scheduler"]["last_epoch"] == 3
    assert TrainingConfig.model_validate(payload["config"]) == cfg
