"""Tests for mlcraft.mlops.registry on a real SQLite-backed MLflow registry: versions, aliases,
promotion, rollback, and loading by alias (checked against MLflow's own alias resolution)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from mlcraft.classroom.testing import assert_close
from mlcraft.data.tabular import CLASS_NAMES
from mlcraft.mlops.registry import (
    alias_history,
    alias_version,
    load_model_by_alias,
    promote,
    register_model,
    rollback,
    set_alias,
)
from mlcraft.mlops.tracking import Tracking, import_mlflow, setup_tracking
from mlcraft.models.tabular import TabularMLP

_names = itertools.count()


def _fresh_model(logged: tuple[Tracking, str], versions: int) -> tuple[Tracking, str, list[str]]:
    tracking, uri = logged
    name = f"tabular-{next(_names)}"
    created = [register_model(tracking, uri, name, class_names=CLASS_NAMES) for _ in range(versions)]
    return tracking, name, created


def test_register_creates_increasing_versions_with_aliases(logged: tuple[Tracking, str]) -> None:
    tracking, name, versions = _fresh_model(logged, 2)
    assert versions == ["1", "2"]
    assert alias_version(tracking, name, "champion") is None
    move = set_alias(tracking, name, "champion", 1)
    assert (move.previous, move.current) == (None, "1")
    v3 = register_model(tracking, logged[1], name, alias="challenger")
    assert v3 == "3" and alias_version(tracking, name, "challenger") == "3"
    # MLflow's own resolution of name@alias agrees.
    client = tracking.client()
    assert str(client.get_model_version_by_alias(name, "champion").version) == "1"
    assert str(client.get_model_version_by_alias(name, "challenger").version) == "3"
    with pytest.raises(ValueError, match="no version 9"):
        set_alias(tracking, name, "champion", 9)


def test_promote_moves_champion_and_removes_challenger(logged: tuple[Tracking, str]) -> None:
    tracking, name, _ = _fresh_model(logged, 2)
    set_alias(tracking, name, "champion", "1")
    set_alias(tracking, name, "challenger", "2")
    move = promote(tracking, name)
    assert (move.alias, move.previous, move.current) == ("champion", "1", "2")
    assert alias_version(tracking, name, "champion") == "2"
    assert alias_version(tracking, name, "challenger") is None
    assert alias_history(tracking, name, "champion") == ["1"]
    with pytest.raises(ValueError, match="no 'challenger' alias"):
        promote(tracking, name)


def test_rollback_walks_back_through_the_history(logged: tuple[Tracking, str]) -> None:
    tracking, name, _ = _fresh_model(logged, 3)
    for version in ("1", "2", "3"):
        set_alias(tracking, name, "challenger", version)
        promote(tracking, name)
    assert alias_history(tracking, name, "champion") == ["1", "2"]
    first = rollback(tracking, name)
    assert (first.previous, first.current) == ("3", "2")
    # Another process (a fresh client on the same store) sees the same state and history.
    reopened = setup_tracking("registry", root=Path(tracking.tracking_uri.removeprefix("sqlite:///")).parent)
    assert alias_version(reopened, name, "champion") == "2"
    second = rollback(reopened, name)
    assert (second.previous, second.current) == ("2", "1")
    with pytest.raises(ValueError, match="no earlier version"):
        rollback(tracking, name)
    explicit = rollback(tracking, name, to_version=3)
    assert explicit.current == "3" and alias_version(tracking, name, "champion") == "3"
    with pytest.raises(ValueError, match="no 'staging' alias"):
        rollback(tracking, name, alias="staging")


def test_load_model_by_alias_serves_the_registered_weights(
    logged: tuple[Tracking, str], trained_model: TabularMLP, live_rows: np.ndarray
) -> None:
    tracking, name, _ = _fresh_model(logged, 2)
    set_alias(tracking, name, "champion", "2")
    loaded = load_model_by_alias(tracking, name)
    assert (loaded.name, loaded.version, loaded.alias) == (name, "2", "champion")
    assert loaded.n_features == 8 and loaded.class_names == CLASS_NAMES
    run = tracking.client().get_run(loaded.run_id)  # type: ignore[arg-type]
    assert run.info.run_name == "for-registry"
    for batch in (1, 5, 300):  # the batch axis of the exported graph is dynamic
        x = torch.from_numpy(live_rows[:batch])
        with torch.inference_mode():
            assert_close(loaded.module(x), trained_model(x), msg=f"loaded vs trained model, batch {batch}")
    probabilities = loaded.predictor().predict_proba(live_rows[:4])
    assert probabilities.shape == (4, 3) and np.allclose(probabilities.sum(1), 1.0, atol=1e-6)
    mlflow = import_mlflow()
    by_uri = mlflow.pytorch.load_model(f"models:/{name}@champion")  # MLflow's own alias URI
    with torch.inference_mode():
        x = torch.from_numpy(live_rows[:3])
        assert_close(by_uri(x), loaded.module(x), msg="models:/name@champion vs load_model_by_alias")
    with pytest.raises(ValueError, match="no alias 'missing'"):
        load_model_by_alias(tracking, name, "missing")
