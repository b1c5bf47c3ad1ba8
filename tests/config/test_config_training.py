"""Tests for mlcraft.config.training.TrainingConfig."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pydantic
import pytest

from mlcraft.config.training import TrainingConfig


def test_defaults() -> None:
    cfg = TrainingConfig()
    assert cfg.lr == 1e-3
    assert cfg.accumulation_steps == 1
    assert cfg.grad_clip_norm == 1.0
    assert cfg.schedule == "cosine"
    assert cfg.max_steps is None
    assert cfg.checkpoint_dir is None
    assert cfg.monitor == "val_loss" and cfg.monitor_mode == "min"


def test_frozen() -> None:
    cfg = TrainingConfig(lr=0.1)
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        cfg.lr = 0.2
    assert cfg.lr == 0.1


@pytest.mark.parametrize("extra", [{"learning_rate": 0.1}, {"Lr": 0.1}, {"accumulate": 2}])
def test_unknown_field_rejected(extra: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError, match="Extra inputs are not permitted") as info:
        TrainingConfig(**extra)
    assert info.value.errors()[0]["type"] == "extra_forbidden"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("lr", 0.0, "greater than 0"),
        ("lr", -1e-3, "greater than 0"),
        ("lr", 11.0, "less than or equal to 10"),
        ("lr", math.nan, "lr"),
        ("lr", math.inf, "lr"),
        ("accumulation_steps", 0, "greater than or equal to 1"),
        ("accumulation_steps", -2, "greater than or equal to 1"),
        ("min_lr_ratio", -0.01, "greater than or equal to 0"),
        ("min_lr_ratio", 1.01, "less than or equal to 1"),
        ("min_lr_ratio", math.nan, "min_lr_ratio"),
        ("batch_size", 0, "greater than or equal to 1"),
        ("epochs", 0, "greater than or equal to 1"),
        ("max_steps", 0, "greater than or equal to 1"),
        ("warmup_steps", -1, "greater than or equal to 0"),
        ("grad_clip_norm", 0.0, "greater than 0"),
        ("weight_decay", -0.1, "greater than or equal to 0"),
        ("seed", -1, "greater than or equal to 0"),
        ("seed", 2**32, "less than or equal to"),
        ("schedule", "linear", "cosine"),
        ("monitor_mode", "best", "min"),
        ("early_stopping_patience", 0, "greater than or equal to 1"),
        ("log_every", 0, "greater than or equal to 1"),
    ],
)
def test_out_of_range_rejected(field: str, value: Any, message: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=message) as info:
        TrainingConfig(**{field: value})
    assert [e["loc"] for e in info.value.errors()] == [(field,)]


@pytest.mark.parametrize(
    ("field", "value"),
    [("lr", 10.0), ("lr", 1e-12), ("accumulation_steps", 1), ("min_lr_ratio", 0.0), ("min_lr_ratio", 1.0)],
)
def test_bounds_inclusive(field: str, value: Any) -> None:
    assert getattr(TrainingConfig(**{field: value}), field) == value


def test_grad_clip_norm_none_means_no_clipping_and_is_allowed() -> None:
    assert TrainingConfig(grad_clip_norm=None).grad_clip_norm is None


def test_warmup_exceeding_max_steps_rejected() -> None:
    with pytest.raises(pydantic.ValidationError, match=r"warmup_steps \(11\) exceeds max_steps \(10\)"):
        TrainingConfig(warmup_steps=11, max_steps=10)


def test_warmup_equal_to_max_steps_or_without_max_steps_allowed() -> None:
    assert TrainingConfig(warmup_steps=10, max_steps=10).warmup_steps == 10
    # Without max_steps the total is only known from the data: the Trainer clamps it then.
    assert TrainingConfig(warmup_steps=10_000).warmup_steps == 10_000


def test_model_validate_runs_the_cross_field_check() -> None:
    with pytest.raises(pydantic.ValidationError, match="exceeds max_steps"):
        TrainingConfig.model_validate({"warmup_steps": 5, "max_steps": 4})


def _full_config(tmp_path: Path) -> TrainingConfig:
    return TrainingConfig(
        lr=3e-4,
        weight_decay=0.01,
        batch_size=16,
        epochs=3,
        max_steps=100,
        accumulation_steps=4,
        grad_clip_norm=None,
        warmup_steps=10,
        schedule="constant",
        min_lr_ratio=0.1,
        amp=False,
        seed=1234,
        deterministic=True,
        drop_last=True,
        eval_every=7,
        monitor="val_acc",
        monitor_mode="max",
        early_stopping_patience=3,
        checkpoint_dir=tmp_path / "ckpt",
        checkpoint_every=5,
        log_every=2,
        progress=False,
        compile=True,
    )


@pytest.mark.parametrize("which", ["default", "full"])
def test_json_round_trip(which: str, tmp_path: Path) -> None:
    cfg = TrainingConfig() if which == "default" else _full_config(tmp_path)
    dumped = cfg.model_dump(mode="json")
    text = json.dumps(dumped)  # really JSON-serializable
    back = TrainingConfig.model_validate(json.loads(text))
    assert back == cfg
    assert back.model_dump() == cfg.model_dump()
    if which == "full":
        assert isinstance(dumped["checkpoint_dir"], str)
        assert back.checkpoint_dir == tmp_path / "ckpt"
        assert isinstance(back.checkpoint_dir, Path)


def test_json_string_round_trip(tmp_path: Path) -> None:
    cfg = _full_config(tmp_path)
    assert TrainingConfig.model_validate_json(cfg.model_dump_json()) == cfg


def test_model_copy_update_is_a_different_config() -> None:
    cfg = TrainingConfig()
    other = cfg.model_copy(update={"lr": 0.5})
    assert other.lr == 0.5 and cfg.lr == 1e-3
    assert other != cfg
