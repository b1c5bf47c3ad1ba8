"""Tests for mlcraft.mlops.tracking on a real SQLite-backed MLflow store: the Trainer's MLflow
callback logs what the Trainer computed, read back through MLflow's own client."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from torch import nn

from mlcraft.config.training import TrainingConfig
from mlcraft.data.tabular import TabularData
from mlcraft.mlops.tracking import (
    MLflowCallback,
    flatten_params,
    import_mlflow,
    local_tracking_uri,
    log_figure,
    metric_history,
    setup_tracking,
)
from mlcraft.models.tabular import TabularMLP, TabularMLPConfig
from mlcraft.recipes.tabular import accuracy_sums
from mlcraft.training.trainer import Trainer


def _trainer(tabular: tuple[TabularData, TabularData], callback: MLflowCallback, **overrides: object) -> Trainer:
    train, val = tabular
    settings: dict[str, object] = {
        "lr": 3e-3,
        "batch_size": 128,
        "epochs": 2,
        "amp": False,
        "progress": False,
        "log_every": 4,
        "seed": 0,
    }
    settings.update(overrides)
    model = TabularMLP()
    model.fit_normalization(train.features)
    return Trainer(
        model,
        TrainingConfig(**settings),  # type: ignore[arg-type]
        train.dataset(),
        nn.functional.cross_entropy,
        val_data=val.dataset(),
        metrics_fn=accuracy_sums,
        device="cpu",
        callbacks=[callback],
    )


def test_setup_tracking_creates_a_sqlite_store_and_reopens_the_experiment(store_root: Path) -> None:
    tracking = setup_tracking("reopen", root=store_root, activate=False)
    assert tracking.tracking_uri == local_tracking_uri(store_root) == f"sqlite:///{store_root / 'mlflow.db'}"
    assert (store_root / "mlflow.db").is_file()
    assert tracking.artifact_location == (store_root / "artifacts").as_uri()
    again = setup_tracking("reopen", root=store_root, activate=False)
    assert again.experiment_id == tracking.experiment_id
    with pytest.raises(ValueError, match="non-empty"):
        setup_tracking("", root=store_root)


def test_callback_logs_params_metrics_and_config(store_root: Path, tabular: tuple[TabularData, TabularData]) -> None:
    tracking = setup_tracking("callback", root=store_root)
    callback = MLflowCallback(tracking, run_name="mlp", tags={"purpose": "test"}, extra_params=TabularMLPConfig())
    trainer = _trainer(tabular, callback)
    trainer.fit()
    client = tracking.client()
    run = client.get_run(callback.run_id)  # type: ignore[arg-type]
    assert run.info.status == "FINISHED" and run.info.run_name == "mlp"
    assert run.data.tags["purpose"] == "test"
    expected_params = flatten_params(trainer.config, prefix="train.")
    assert {k: run.data.params[k] for k in expected_params} == expected_params
    assert run.data.params["hidden"] == "[64, 64]" and run.data.params["model.class"] == "TabularMLP"
    assert run.data.params["model.parameters"] == str(sum(p.numel() for p in trainer.model.parameters()))

    logged = [(int(h["step"]), h["loss"]) for h in trainer.history if int(h["step"]) % 4 == 0]
    assert metric_history(tracking, callback.run_id, "train_loss") == logged  # type: ignore[arg-type]
    lr_steps = [step for step, _ in metric_history(tracking, callback.run_id, "lr")]  # type: ignore[arg-type]
    assert lr_steps == [step for step, _ in logged]
    evals = [(int(e["step"]), e["val_accuracy"]) for e in trainer.eval_history]
    assert len(evals) == 2, "one evaluation per epoch"
    assert metric_history(tracking, callback.run_id, "val_accuracy") == evals  # type: ignore[arg-type]
    assert run.data.metrics["best_val_loss"] == pytest.approx(min(e["val_loss"] for e in trainer.eval_history))

    mlflow = import_mlflow()
    config = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/config/training.json")
    assert config == json.loads(trainer.config.model_dump_json())
    assert run.info.artifact_uri.startswith((store_root / "artifacts").as_uri())


def test_callback_logs_into_an_active_fluent_run(store_root: Path, tabular: tuple[TabularData, TabularData]) -> None:
    tracking = setup_tracking("fluent", root=store_root)
    mlflow = import_mlflow()
    callback = MLflowCallback(tracking, tags={"kind": "fluent"})
    with mlflow.start_run(run_name="outer") as run:
        _trainer(tabular, callback, epochs=1).fit()
        assert callback.run_id == run.info.run_id
        assert tracking.client().get_run(run.info.run_id).info.status == "RUNNING", "the callback must not end it"
    finished = tracking.client().get_run(run.info.run_id)
    assert finished.info.status == "FINISHED" and finished.data.tags["kind"] == "fluent"
    assert "train_loss" in finished.data.metrics


def test_paused_fit_keeps_the_run_open_until_the_end(
    store_root: Path, tabular: tuple[TabularData, TabularData]
) -> None:
    tracking = setup_tracking("paused", root=store_root)
    callback = MLflowCallback(tracking)
    trainer = _trainer(tabular, callback, max_steps=8, log_every=2, eval_every=4)
    trainer.fit(until_step=4)
    client = tracking.client()
    assert client.get_run(callback.run_id).info.status == "RUNNING"  # type: ignore[arg-type]
    trainer.fit()
    assert client.get_run(callback.run_id).info.status == "FINISHED"  # type: ignore[arg-type]
    steps = [s for s, _ in metric_history(tracking, callback.run_id, "train_loss")]  # type: ignore[arg-type]
    assert steps == [2, 4, 6, 8], "one run, no duplicated steps across the two fit() calls"


def test_log_figure_and_flatten_params(store_root: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tracking = setup_tracking("figures", root=store_root, activate=False)
    client = tracking.client()
    run = client.create_run(tracking.experiment_id)
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    log_figure(tracking, run.info.run_id, fig, "plots/loss.png")
    plt.close(fig)
    assert [f.path for f in client.list_artifacts(run.info.run_id, "plots")] == ["plots/loss.png"]
    assert flatten_params({"a": {"b": 1, "c": [1, 2]}, "d": None}) == {"a.b": "1", "a.c": "[1, 2]", "d": "None"}


def test_callback_needs_fit_start() -> None:
    from mlcraft.mlops.tracking import Tracking

    callback = MLflowCallback(Tracking("sqlite:///unused.db", "x", "0", None))
    with pytest.raises(RuntimeError, match="on_fit_start"):
        callback._log_metrics({"loss": 1.0}, 1)
