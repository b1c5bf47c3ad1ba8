"""The Trainer seeds a run once and can build the model itself; ``finished`` tells a paused run
from one that is over."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn
from torch.utils.data import TensorDataset

from mlcraft.config.training import TrainingConfig
from mlcraft.training import Trainer
from mlcraft.utils.seed import seed_everything

ConfigFactory = Callable[..., TrainingConfig]


def _data(n: int = 64) -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    return TensorDataset(x, x.sum(1, keepdim=True))


def _build() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))


def test_a_builder_is_called_after_seeding(make_config: ConfigFactory) -> None:
    cfg = make_config(seed=11, batch_size=16, epochs=1)
    torch.manual_seed(123)  # whatever the state before, the initial weights depend on cfg.seed only
    trainer = Trainer(_build, cfg, _data(), F.mse_loss, device="cpu")
    seed_everything(11)
    expected = _build()
    for (name, got), want in zip(trainer.model.state_dict().items(), expected.state_dict().values(), strict=True):
        assert torch.equal(got, want), name
    other = Trainer(_build, make_config(seed=12, batch_size=16, epochs=1), _data(), F.mse_loss, device="cpu")
    first_layer = next(iter(trainer.model.parameters()))
    assert not torch.equal(next(other.model.parameters()), first_layer)


def test_a_builder_that_returns_no_module_is_refused(make_config: ConfigFactory) -> None:
    with pytest.raises(TypeError, match=r"builder must return an nn\.Module, got int"):
        Trainer(lambda: 3, make_config(), _data(), F.mse_loss, device="cpu")  # type: ignore[arg-type, return-value]  # wrong on purpose


def test_finished_after_the_last_step_not_after_a_pause(make_config: ConfigFactory) -> None:
    trainer = Trainer(_build, make_config(batch_size=16, max_steps=6), _data(), F.mse_loss, device="cpu")
    assert not trainer.finished
    trainer.fit(until_step=2)
    assert trainer.state.step == 2 and not trainer.finished, "a paused run is not finished"
    trainer.fit()
    assert trainer.state.step == 6 and trainer.finished


def test_finished_after_the_last_epoch_and_after_early_stopping(make_config: ConfigFactory) -> None:
    by_epochs = Trainer(_build, make_config(batch_size=16, epochs=2), _data(), F.mse_loss, device="cpu")
    by_epochs.fit()
    assert by_epochs.state.epoch == 2 and by_epochs.finished
    stopping = Trainer(
        _build,
        make_config(batch_size=16, epochs=50, lr=1e-12, eval_every=1, early_stopping_patience=1),
        _data(),
        F.mse_loss,
        val_data=_data(16),
        device="cpu",
    )
    stopping.fit()
    assert stopping.state.stopped_early and stopping.finished and stopping.state.epoch < 50
