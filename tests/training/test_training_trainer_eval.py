"""Trainer evaluation, early stopping, best/last checkpoints and callbacks."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn
from torch.utils.data import TensorDataset

from mlcraft.config.training import TrainingConfig
from mlcraft.training import Callback, HistoryCallback, Trainer, load_checkpoint

ConfigFactory = Callable[..., TrainingConfig]


def _data(n: int, seed: int = 0, sign: float = 1.0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g, dtype=torch.float64)
    w = torch.tensor([[1.0, -2.0], [0.5, 0.0], [-1.0, 1.5]], dtype=torch.float64)
    return TensorDataset(x, sign * (x @ w) + 0.05 * torch.randn(n, 2, generator=g, dtype=torch.float64))


class Probe(nn.Module):
    """A small MLP with dropout that records the autograd and train/eval state of each forward."""

    def __init__(self, p: float = 0.5, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Dropout(p), nn.Linear(16, 2)).double()
        self.grad_enabled: list[bool] = []
        self.training_seen: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.grad_enabled.append(torch.is_grad_enabled())
        self.training_seen.append(self.net[2].training)
        out: torch.Tensor = self.net(x)
        return out


# --------------------------------------------------------------------------- evaluate


def test_evaluate_is_weighted_by_samples_in_eval_mode_without_grad(make_config: ConfigFactory) -> None:
    model = Probe()
    val = _data(21, seed=1)  # batches of 8, 8 and 5
    trainer = Trainer(model, make_config(batch_size=8), _data(16), F.mse_loss, val_data=val, device="cpu")
    assert [len(b[1]) for b in trainer._eval_loader(val)] == [8, 8, 5]
    model.train()
    result = trainer.evaluate()
    assert set(result) == {"val_loss"}
    assert model.grad_enabled == [False] * 3
    assert model.training_seen == [False] * 3  # dropout off
    assert model.training and model.net[2].training  # train mode restored

    x, y = val.tensors
    model.eval()
    with torch.no_grad():
        expected = F.mse_loss(model.net(x), y).item()  # float64 mean over all 21 samples
    assert result["val_loss"] == pytest.approx(expected, rel=1e-12)
    # Averaging the three batch means unweighted would give a different number.
    with torch.no_grad():
        unweighted = sum(F.mse_loss(model.net(x[i : i + 8]), y[i : i + 8]).item() for i in (0, 8, 16)) / 3
    assert abs(unweighted - expected) > 1e-6
    # Deterministic: dropout really is off.
    assert trainer.evaluate(val) == result


def test_evaluate_keeps_eval_mode(make_config: ConfigFactory) -> None:
    model = Probe()
    trainer = Trainer(model, make_config(batch_size=8), _data(16), F.mse_loss, device="cpu")
    model.eval()
    trainer.evaluate(_data(10))
    assert not model.training and not model.net[2].training


def test_evaluate_restores_mode_after_an_error(make_config: ConfigFactory) -> None:
    model = Probe()

    def broken_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        raise ArithmeticError("boom")

    trainer = Trainer(model, make_config(), _data(16), broken_loss, device="cpu")
    model.train()
    with pytest.raises(ArithmeticError, match="boom"):
        trainer.evaluate(_data(4))
    assert model.training and model.net[2].training


def test_evaluate_outputs_are_inference_tensors(make_config: ConfigFactory) -> None:
    seen: list[tuple[bool, bool]] = []

    def loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        seen.append((outputs.requires_grad, torch.is_inference_mode_enabled()))
        return F.mse_loss(outputs, targets)

    trainer = Trainer(Probe(), make_config(), _data(16), loss, device="cpu")
    trainer.evaluate(_data(5))
    assert seen == [(False, True)]
    assert not torch.is_inference_mode_enabled()  # and left again afterwards


def test_metrics_fn_sums_become_means(make_config: ConfigFactory) -> None:
    def metrics(outputs: torch.Tensor, targets: torch.Tensor) -> Mapping[str, float | torch.Tensor]:
        return {
            "abs_err": (outputs - targets).abs().sum(dim=1).sum(),  # a tensor sum
            "positive": float((outputs[:, 0] > 0).sum()),  # a Python float sum
        }

    model = Probe(seed=3)
    val = _data(21, seed=4)
    trainer = Trainer(
        model, make_config(batch_size=6), _data(8), F.mse_loss, val_data=val, metrics_fn=metrics, device="cpu"
    )
    result = trainer.evaluate()
    assert sorted(result) == ["val_abs_err", "val_loss", "val_positive"]
    x, y = val.tensors
    model.eval()
    with torch.no_grad():
        out = model.net(x)
    assert result["val_abs_err"] == pytest.approx(float((out - y).abs().sum(dim=1).mean()), rel=1e-12)
    assert result["val_positive"] == pytest.approx(float((out[:, 0] > 0).double().mean()), rel=1e-15)
    assert result["val_loss"] == pytest.approx(F.mse_loss(out, y).item(), rel=1e-12)


def test_metrics_fn_python_float_sums_keep_float64_precision(make_config: ConfigFactory) -> None:
    def metrics(outputs: torch.Tensor, targets: torch.Tensor) -> Mapping[str, float]:
        return {"score": 0.1 * len(targets)}

    trainer = Trainer(Probe(), make_config(batch_size=4), _data(8), F.mse_loss, metrics_fn=metrics, device="cpu")
    assert trainer.evaluate(_data(4))["val_score"] == pytest.approx(0.1, rel=1e-12)


def test_evaluate_without_data_raises(make_config: ConfigFactory) -> None:
    trainer = Trainer(Probe(), make_config(), _data(8), F.mse_loss, device="cpu")
    with pytest.raises(ValueError, match="no data to evaluate"):
        trainer.evaluate()


def test_missing_monitored_metric_raises(make_config: ConfigFactory) -> None:
    cfg = make_config(batch_size=4, max_steps=2, eval_every=1, monitor="val_acc")
    trainer = Trainer(Probe(), cfg, _data(8), F.mse_loss, val_data=_data(4), device="cpu")
    with pytest.raises(KeyError, match="monitored metric 'val_acc' not among"):
        trainer.fit()


# --------------------------------------------------------------------------- early stopping


def _scripted_metric(values: list[float]) -> Callable[[Any, Any], Mapping[str, torch.Tensor]]:
    """metrics_fn whose val_score is values[k] at the k-th evaluation (the val set is one batch)."""
    calls = iter(values)

    def metrics(outputs: torch.Tensor, targets: torch.Tensor) -> Mapping[str, torch.Tensor]:
        return {"score": torch.tensor(next(calls) * len(targets), dtype=torch.float64)}

    return metrics


@pytest.mark.parametrize("mode", ["min", "max"])
def test_early_stopping_on_a_scripted_metric_and_best_checkpoint(
    make_config: ConfigFactory, tmp_path: Path, mode: str
) -> None:
    sign = 1.0 if mode == "min" else -1.0
    values = [sign * v for v in [5.0, 4.0, 3.0, 3.5, 3.2, 1.0, 0.5]]
    cfg = make_config(
        lr=0.01,
        batch_size=4,
        max_steps=100,
        eval_every=2,
        monitor="val_score",
        monitor_mode=mode,
        early_stopping_patience=2,
        checkpoint_dir=tmp_path,
    )
    trainer = Trainer(
        Probe(p=0.0), cfg, _data(40), F.mse_loss, val_data=_data(4), metrics_fn=_scripted_metric(values), device="cpu"
    )
    trainer.fit()
    assert trainer.state.stopped_early
    assert trainer.state.step == 10  # evaluations at steps 2, 4, 6 (best), 8, 10 -> two without improvement
    assert [e["step"] for e in trainer.eval_history] == [2.0, 4.0, 6.0, 8.0, 10.0]
    assert [e["val_score"] for e in trainer.eval_history] == pytest.approx(values[:5], rel=1e-15)
    assert trainer.state.best_metric == pytest.approx(sign * 3.0, rel=1e-15)
    assert trainer.early_stopping is not None and trainer.early_stopping.bad_evals == 2

    best = load_checkpoint(tmp_path / "best.pt")
    assert best["state"]["step"] == 6
    assert best["state"]["best_metric"] == pytest.approx(sign * 3.0, rel=1e-15)
    last = load_checkpoint(tmp_path / "last.pt")
    assert last["state"]["step"] == 10 and last["state"]["stopped_early"] is True
    assert last["early_stopping"] == {"best": pytest.approx(sign * 3.0, rel=1e-15), "bad_evals": 2}


def test_early_stopping_on_real_val_loss(make_config: ConfigFactory, tmp_path: Path) -> None:
    """The validation targets are the negated training targets: the better the model fits the
    training set, the worse the validation loss, so the first evaluation stays the best."""
    cfg = make_config(lr=0.05, batch_size=8, epochs=50, early_stopping_patience=3, checkpoint_dir=tmp_path)
    model = Probe(p=0.0, seed=5)
    val = _data(20, seed=6, sign=-1.0)
    trainer = Trainer(model, cfg, _data(40, seed=7), F.mse_loss, val_data=val, device="cpu")
    trainer.fit()
    assert trainer.state.stopped_early
    assert trainer.state.epoch == 4 < cfg.epochs  # evaluated at each of 4 epoch ends, then stopped
    losses = [e["val_loss"] for e in trainer.eval_history]
    assert len(losses) == 4 and all(v > losses[0] for v in losses[1:])  # never better than the first
    best_step = int(trainer.eval_history[losses.index(min(losses))]["step"])
    best = load_checkpoint(tmp_path / "best.pt")
    assert best["state"]["step"] == best_step == 5
    # The best checkpoint's weights reproduce the best validation loss.
    fresh = Probe(p=0.0, seed=123)
    fresh.load_state_dict(best["model"])
    fresh.eval()
    with torch.no_grad():
        assert F.mse_loss(fresh.net(val.tensors[0]), val.tensors[1]).item() == pytest.approx(min(losses), rel=1e-12)


def test_best_checkpoint_tracked_without_early_stopping(make_config: ConfigFactory, tmp_path: Path) -> None:
    values = [3.0, 1.0, 2.0, 0.5, 0.7]
    cfg = make_config(batch_size=4, max_steps=5, eval_every=1, monitor="val_score", checkpoint_dir=tmp_path)
    trainer = Trainer(
        Probe(p=0.0), cfg, _data(40), F.mse_loss, val_data=_data(4), metrics_fn=_scripted_metric(values), device="cpu"
    )
    trainer.fit()
    assert not trainer.state.stopped_early and trainer.state.step == 5
    assert trainer.state.best_metric == 0.5
    assert load_checkpoint(tmp_path / "best.pt")["state"]["step"] == 4
    assert load_checkpoint(tmp_path / "last.pt")["state"]["step"] == 5


def test_checkpoint_every_saves_last_periodically(
    make_config: ConfigFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = make_config(batch_size=4, max_steps=5, checkpoint_every=2, checkpoint_dir=tmp_path)
    trainer = Trainer(Probe(p=0.0), cfg, _data(40), F.mse_loss, device="cpu")
    saved: list[tuple[str, int]] = []
    real = trainer.save_checkpoint

    def spy(path: str | Path) -> Path:
        saved.append((Path(path).name, trainer.state.step))
        return real(path)

    monkeypatch.setattr(trainer, "save_checkpoint", spy)
    trainer.fit()
    assert saved == [("last.pt", 2), ("last.pt", 4), ("last.pt", 5)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_no_checkpoint_dir_writes_nothing(
    make_config: ConfigFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = make_config(batch_size=4, max_steps=3, eval_every=1, checkpoint_every=1)
    Trainer(Probe(p=0.0), cfg, _data(16), F.mse_loss, val_data=_data(4), device="cpu").fit()
    assert list(tmp_path.iterdir()) == []


def test_epoch_end_evaluation_runs_when_max_steps_ends_an_epoch(make_config: ConfigFactory) -> None:
    cfg = make_config(batch_size=4, max_steps=5)  # 20 samples / 4 = exactly 5 steps = 1 epoch
    trainer = Trainer(Probe(p=0.0), cfg, _data(20), F.mse_loss, val_data=_data(4), device="cpu")
    trainer.fit()
    assert trainer.state.step == 5
    assert len(trainer.eval_history) == 1


# --------------------------------------------------------------------------- callbacks


class _Recorder(Callback):
    def __init__(self) -> None:
        self.events: list[str] = []

    def on_fit_start(self, trainer: Trainer) -> None:
        self.events.append(f"start@{trainer.state.step}")

    def on_step_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        self.events.append(f"step@{int(metrics['step'])}")

    def on_eval_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        self.events.append(f"eval@{int(metrics['step'])}")

    def on_fit_end(self, trainer: Trainer) -> None:
        self.events.append(f"end@{trainer.state.step}")


def test_callbacks_receive_logged_steps_and_evals(make_config: ConfigFactory) -> None:
    history, recorder = HistoryCallback(), _Recorder()
    cfg = make_config(batch_size=4, max_steps=6, log_every=2, eval_every=3)
    trainer = Trainer(
        Probe(p=0.0), cfg, _data(40), F.mse_loss, val_data=_data(6), callbacks=[history, recorder], device="cpu"
    )
    trainer.fit()
    assert [h["step"] for h in history.steps] == [2.0, 4.0, 6.0]
    assert history.steps == [h for h in trainer.history if h["step"] % 2 == 0]
    assert set(history.steps[0]) == {"step", "epoch", "loss", "lr", "grad_norm", "skipped"}
    assert [e["step"] for e in history.evals] == [3.0, 6.0]
    assert history.evals == trainer.eval_history
    assert all(set(e) == {"val_loss", "step"} for e in history.evals)
    assert recorder.events == ["start@0", "step@2", "eval@3", "step@4", "step@6", "eval@6", "end@6"]


def test_callbacks_called_once_per_fit(make_config: ConfigFactory) -> None:
    recorder = _Recorder()
    cfg = make_config(batch_size=4, max_steps=4)
    trainer = Trainer(Probe(p=0.0), cfg, _data(40), F.mse_loss, callbacks=[recorder], device="cpu")
    trainer.fit(until_step=2)
    assert recorder.events == ["start@0", "end@2"]
    trainer.fit()
    assert recorder.events == ["start@0", "end@2", "start@2", "end@4"]
