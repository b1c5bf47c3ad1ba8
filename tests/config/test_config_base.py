"""Tests for mlcraft.config.base.FrozenConfig."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest
from pydantic import Field

from mlcraft.config.base import FrozenConfig


class TrainConfig(FrozenConfig):
    epochs: int = Field(default=3, ge=0)
    lr: float = Field(default=1e-3, gt=0)
    name: str = "run"


def test_defaults_and_values() -> None:
    cfg = TrainConfig()
    assert (cfg.epochs, cfg.lr, cfg.name) == (3, 1e-3, "run")
    cfg = TrainConfig(epochs=10, lr=0.5, name="x")
    assert (cfg.epochs, cfg.lr, cfg.name) == (10, 0.5, "x")


def test_field_bound_is_inclusive() -> None:
    assert TrainConfig(epochs=0).epochs == 0


@pytest.mark.parametrize("epochs", [-1, -100])
def test_negative_rejected(epochs: int) -> None:
    with pytest.raises(pydantic.ValidationError, match="greater than or equal to 0") as info:
        TrainConfig(epochs=epochs)
    assert [e["loc"] for e in info.value.errors()] == [("epochs",)]


@pytest.mark.parametrize("lr", [0.0, -1e-3])
def test_gt_bound_rejected(lr: float) -> None:
    with pytest.raises(pydantic.ValidationError, match="greater than 0"):
        TrainConfig(lr=lr)


@pytest.mark.parametrize("extra", [{"learning_rate": 0.1}, {"epoch": 5}, {"Epochs": 5}])
def test_unknown_field_rejected(extra: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError, match="Extra inputs are not permitted") as info:
        TrainConfig(**extra)
    assert info.value.errors()[0]["type"] == "extra_forbidden"


def test_unknown_field_rejected_by_model_validate() -> None:
    with pytest.raises(pydantic.ValidationError, match="Extra inputs are not permitted"):
        TrainConfig.model_validate({"epochs": 1, "typo": True})


def test_assignment_raises() -> None:
    cfg = TrainConfig()
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        cfg.epochs = 5
    assert cfg.epochs == 3


def test_assignment_of_invalid_value_also_raises_and_keeps_value() -> None:
    cfg = TrainConfig(epochs=2)
    with pytest.raises(pydantic.ValidationError):
        cfg.epochs = -1
    assert cfg.epochs == 2


def test_new_attribute_raises() -> None:
    cfg = TrainConfig()
    with pytest.raises(pydantic.ValidationError):
        cfg.extra_attr = 1  # type: ignore[attr-defined]
    assert not hasattr(cfg, "extra_attr")


def test_delete_raises() -> None:
    cfg = TrainConfig()
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        del cfg.epochs
    assert cfg.epochs == 3


def test_invalid_default_is_validated() -> None:
    class Broken(FrozenConfig):
        workers: int = Field(default=-1, ge=0)

    with pytest.raises(pydantic.ValidationError, match="greater than or equal to 0"):
        Broken()
    assert Broken(workers=2).workers == 2


def test_hashable_and_equal_by_value() -> None:
    a, b, c = TrainConfig(epochs=4), TrainConfig(epochs=4), TrainConfig(epochs=5)
    assert a == b
    assert hash(a) == hash(b)
    assert a != c
    assert len({a, b, c}) == 2


def test_round_trip_through_dict_and_json() -> None:
    cfg = TrainConfig(epochs=7, lr=0.25, name="exp")
    assert TrainConfig.model_validate(cfg.model_dump()) == cfg
    assert TrainConfig.model_validate_json(cfg.model_dump_json()) == cfg


def test_model_copy_leaves_original_unchanged() -> None:
    cfg = TrainConfig(epochs=1)
    other = cfg.model_copy(update={"epochs": 9})
    assert other.epochs == 9
    assert cfg.epochs == 1


def test_subclass_inherits_config() -> None:
    class Child(TrainConfig):
        batch_size: int = Field(default=32, ge=1)

    child = Child()
    with pytest.raises(pydantic.ValidationError):
        Child(batch_size=0)
    with pytest.raises(pydantic.ValidationError):
        Child(unknown=1)  # type: ignore[call-arg]  # deliberately unknown field
    with pytest.raises(pydantic.ValidationError):
        child.batch_size = 64
