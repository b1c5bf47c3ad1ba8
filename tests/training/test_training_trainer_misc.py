"""Trainer pieces: AMP on the CPU, torch.compile fallback, batch helpers, config checks on resume."""

from __future__ import annotations

import collections
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn
from torch.utils.data import TensorDataset

from mlcraft.classroom.testing import assert_close
from mlcraft.config.training import TrainingConfig
from mlcraft.training import Trainer, maybe_compile, move_to
from mlcraft.training.trainer import _num_samples

ConfigFactory = Callable[..., TrainingConfig]


def _linear_problem(n: int = 256, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    w = torch.tensor([[2.0], [-1.0], [0.5], [3.0]])
    return TensorDataset(x, x @ w + 1.0)


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))


def _record_output_dtypes(model: nn.Module) -> list[torch.dtype]:
    dtypes: list[torch.dtype] = []
    model.register_forward_hook(lambda module, inputs, output: dtypes.append(output.dtype))
    return dtypes


# --------------------------------------------------------------------------- AMP


def test_amp_on_cpu_uses_bfloat16_without_scaler_and_still_learns(make_config: ConfigFactory) -> None:
    cfg = make_config(amp=True, lr=0.02, batch_size=32, epochs=8, schedule="constant")
    model = _model()
    dtypes = _record_output_dtypes(model)
    trainer = Trainer(model, cfg, _linear_problem(), F.mse_loss, val_data=_linear_problem(64, seed=1), device="cpu")
    assert trainer.amp_dtype == torch.bfloat16
    assert not trainer.scaler.is_enabled()
    initial = trainer.evaluate()["val_loss"]
    history = trainer.fit()
    assert len(history) == 64 and trainer.state.skipped_steps == 0
    assert set(dtypes) == {torch.bfloat16}  # autocast in training and in evaluation
    assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights stay fp32
    final = trainer.eval_history[-1]["val_loss"]
    assert final < 0.5 * initial
    assert sum(h["loss"] for h in history[-8:]) < 0.5 * sum(h["loss"] for h in history[:8])


def test_no_autocast_without_amp(make_config: ConfigFactory) -> None:
    cfg = make_config(amp=False, batch_size=32, max_steps=2)
    model = _model()
    dtypes = _record_output_dtypes(model)
    trainer = Trainer(model, cfg, _linear_problem(64), F.mse_loss, device="cpu")
    assert trainer.amp_dtype is None
    assert not trainer.scaler.is_enabled()
    trainer.fit()
    trainer.evaluate(_linear_problem(8))
    assert dtypes == [torch.float32] * 3


def test_trainer_learns_with_amp_on_each_device(make_config: ConfigFactory, device: torch.device) -> None:
    cfg = make_config(amp=True, lr=0.05, batch_size=32, epochs=4, schedule="constant")
    trainer = Trainer(_model(), cfg, _linear_problem(), F.mse_loss, val_data=_linear_problem(64, seed=1), device=device)
    assert trainer.amp_dtype in (torch.bfloat16, torch.float16)
    assert trainer.scaler.is_enabled() == (trainer.amp_dtype == torch.float16)  # loss scaling only for fp16
    assert all(p.device.type == device.type for p in trainer.model.parameters())
    initial = trainer.evaluate()["val_loss"]
    trainer.fit()
    assert trainer.eval_history[-1]["val_loss"] < 0.5 * initial


@pytest.mark.gpu
def test_cuda_amp_dtype_matches_hardware(make_config: ConfigFactory) -> None:
    trainer = Trainer(_model(), make_config(amp=True), _linear_problem(64), F.mse_loss, device="cuda")
    expected = torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16
    assert trainer.amp_dtype == expected
    assert trainer.scaler.is_enabled() == (expected == torch.float16)


# --------------------------------------------------------------------------- maybe_compile


def test_maybe_compile_disabled_returns_same_object() -> None:
    model = _model()
    assert maybe_compile(model, enabled=False) is model


def test_maybe_compile_falls_back_when_compile_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_compile(*args: Any, **kwargs: Any) -> nn.Module:
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(torch, "compile", broken_compile)
    model = _model()
    assert maybe_compile(model, enabled=True) is model


def test_maybe_compile_falls_back_when_dynamo_unsupported(monkeypatch: pytest.MonkeyPatch) -> None:
    def must_not_be_called(*args: Any, **kwargs: Any) -> nn.Module:
        raise AssertionError("torch.compile called although dynamo is unsupported")

    monkeypatch.setattr(torch._dynamo, "is_dynamo_supported", lambda: False)
    monkeypatch.setattr(torch, "compile", must_not_be_called)
    model = _model()
    assert maybe_compile(model, enabled=True) is model


def test_maybe_compile_eager_backend_gives_same_outputs() -> None:
    # torch._dynamo imports is_dynamo_supported but leaves it out of its __all__.
    if not torch._dynamo.is_dynamo_supported():  # type: ignore[attr-defined]
        pytest.skip("torch.compile is not supported on this platform")
    model = _model()
    compiled = maybe_compile(model, enabled=True, backend="eager")
    assert compiled is not model
    assert getattr(compiled, "_orig_mod", None) is model
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert_close(compiled(x), model(x))
    torch._dynamo.reset()


# --------------------------------------------------------------------------- batch helpers


def test_move_to_nested_structures(device: torch.device) -> None:
    batch = {
        "inputs": [torch.zeros(2), (torch.ones(3, dtype=torch.float64), "name", 7)],
        "targets": (torch.arange(4), None),
    }
    moved = move_to(batch, device)
    assert isinstance(moved, dict) and set(moved) == {"inputs", "targets"}
    assert isinstance(moved["inputs"], list) and isinstance(moved["inputs"][1], tuple)
    assert isinstance(moved["targets"], tuple)
    assert moved["inputs"][0].device.type == device.type
    assert moved["inputs"][1][0].device.type == device.type
    assert moved["inputs"][1][0].dtype == torch.float64
    assert moved["targets"][0].device.type == device.type
    assert moved["inputs"][1][1:] == ("name", 7) and moved["targets"][1] is None
    assert torch.equal(moved["targets"][0].cpu(), torch.arange(4))
    assert move_to("just a string", device) == "just a string"


def test_move_to_accepts_any_mapping(device: torch.device) -> None:
    batch = collections.OrderedDict(b=torch.ones(1), a=torch.zeros(1))
    moved = move_to(batch, device)
    assert list(moved) == ["b", "a"]
    assert all(v.device.type == device.type for v in moved.values())


class _Pair(NamedTuple):
    inputs: torch.Tensor
    targets: torch.Tensor


def test_move_to_namedtuple(device: torch.device) -> None:
    moved = move_to(_Pair(torch.zeros(2), torch.ones(2)), device)
    assert isinstance(moved, _Pair)
    assert torch.equal(moved.targets.cpu(), torch.ones(2))


@pytest.mark.parametrize(
    ("targets", "expected"),
    [
        (torch.zeros(5, 3), 5),
        (torch.zeros(0, 2), 0),
        (torch.tensor(1.5), 1),  # a 0-d tensor is one sample
        ([1, 2, 3], 3),
        (("a", "b"), 2),
        ([{"boxes": torch.zeros(2, 4)}, {"boxes": torch.zeros(0, 4)}], 2),  # detection-style targets
    ],
)
def test_num_samples(targets: Any, expected: int) -> None:
    assert _num_samples(targets) == expected


@pytest.mark.parametrize("targets", [{"labels": torch.zeros(3)}, 3, 2.0, None])
def test_num_samples_unsupported_type(targets: Any) -> None:
    with pytest.raises(TypeError, match=f"cannot count samples in targets of type {type(targets).__name__}"):
        _num_samples(targets)


def test_evaluate_with_list_targets_via_collate_fn(make_config: ConfigFactory) -> None:
    """Targets may be a list (e.g. one dict per image): they are counted with len()."""
    data = _linear_problem(10)

    def collate(samples: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return torch.stack([s[0] for s in samples]), [s[1] for s in samples]

    def loss(outputs: torch.Tensor, targets: list[torch.Tensor]) -> torch.Tensor:
        return F.mse_loss(outputs, torch.stack(targets))

    model = _model()
    trainer = Trainer(model, make_config(batch_size=4), data, loss, collate_fn=collate, device="cpu")
    result = trainer.evaluate(data)
    with torch.no_grad():
        expected = F.mse_loss(model(data.tensors[0]).double(), data.tensors[1].double()).item()
    assert result["val_loss"] == pytest.approx(expected, rel=1e-6)


# --------------------------------------------------------------------------- resume checks


def _checkpoint(make_config: ConfigFactory, tmp_path: Path, **overrides: Any) -> tuple[TrainingConfig, Path]:
    cfg = make_config(batch_size=16, max_steps=3, checkpoint_dir=tmp_path, **overrides)
    Trainer(_model(), cfg, _linear_problem(64), F.mse_loss, device="cpu").fit()
    return cfg, tmp_path / "last.pt"


@pytest.mark.parametrize(
    ("field", "value"), [("lr", 0.5), ("seed", 1), ("accumulation_steps", 2), ("grad_clip_norm", None)]
)
def test_load_checkpoint_refuses_a_different_config(
    make_config: ConfigFactory, tmp_path: Path, field: str, value: Any
) -> None:
    cfg, path = _checkpoint(make_config, tmp_path)
    other = cfg.model_copy(update={field: value})
    model = _model(seed=9)
    before = [p.detach().clone() for p in model.parameters()]
    trainer = Trainer(model, other, _linear_problem(64), F.mse_loss, device="cpu")
    with pytest.raises(ValueError, match=f"checkpoint was trained with different {field}; resume with the same"):
        trainer.load_checkpoint(path)
    assert trainer.state.step == 0
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), before, strict=True))  # nothing loaded


def test_load_checkpoint_names_every_mismatched_field(make_config: ConfigFactory, tmp_path: Path) -> None:
    cfg, path = _checkpoint(make_config, tmp_path)
    other = cfg.model_copy(update={"lr": 0.5, "batch_size": 8})
    trainer = Trainer(_model(), other, _linear_problem(64), F.mse_loss, device="cpu")
    with pytest.raises(ValueError, match="different lr, batch_size;"):
        trainer.load_checkpoint(path)


def test_load_checkpoint_ignores_cosmetic_fields(make_config: ConfigFactory, tmp_path: Path) -> None:
    cfg, path = _checkpoint(make_config, tmp_path)
    other = cfg.model_copy(
        update={"log_every": 7, "progress": True, "checkpoint_dir": tmp_path / "elsewhere", "checkpoint_every": 2}
    )
    trainer = Trainer(_model(seed=9), other, _linear_problem(64), F.mse_loss, device="cpu")
    trainer.load_checkpoint(path)
    assert trainer.state.step == 3
    saved = torch.load(path, weights_only=True)["model"]
    assert all(torch.equal(trainer.model.state_dict()[k], v) for k, v in saved.items())


# --------------------------------------------------------------------------- logging


@pytest.fixture
def _restore_structlog() -> Any:
    import structlog

    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.mark.usefixtures("_restore_structlog")
def test_trainer_logging_follows_configure_logging(
    make_config: ConfigFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlcraft.utils.logging import configure_logging

    configure_logging("WARNING", json=True)
    Trainer(
        _model(), make_config(batch_size=32, max_steps=1, log_every=1), _linear_problem(64), F.mse_loss, device="cpu"
    ).fit()
    captured = capsys.readouterr()
    assert '"event": "train"' not in captured.err and "train" not in captured.out  # INFO is below WARNING
