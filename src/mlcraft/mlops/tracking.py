"""Experiment tracking with MLflow on a real database, and the Trainer's MLflow callback.

By default runs go to a SQLite backend store (``sqlite:///<root>/mlflow.db``: params, metrics,
tags, the model registry) and a local artifact store (``<root>/artifacts``: configs, plots,
models); pass ``tracking_uri="http://host:5000"`` to use a tracking server instead. Follows the
MLflow 3 tracking and model APIs (https://mlflow.org/docs/latest/ml/tracking/): runs with params,
step-indexed metrics and artifacts; ``mlflow.pytorch.log_model(name=...)`` in the ``pt2``
(``torch.export``) format, which loads without unpickling code.

``mlflow`` takes about a second to import, so it is imported inside the functions; importing
this module does not import it. Telemetry is switched off (``MLFLOW_DISABLE_TELEMETRY``) before
the first import: nothing here reaches the network unless ``tracking_uri`` points at a server.
To browse a local store: ``mlflow ui --backend-store-uri sqlite:///<root>/mlflow.db``
(the UI needs the full ``mlflow`` package; ``mlflow-skinny`` has no web server).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import warnings
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from pydantic import BaseModel
from torch import nn

from mlcraft.training.callbacks import Callback
from mlcraft.utils.logging import get_logger

if TYPE_CHECKING:
    from types import ModuleType

    from matplotlib.figure import Figure
    from mlflow import MlflowClient
    from mlflow.models.model import ModelInfo

    from mlcraft.training.trainer import Trainer

__all__ = [
    "MLflowCallback",
    "Tracking",
    "flatten_params",
    "import_mlflow",
    "local_tracking_uri",
    "log_figure",
    "log_torch_model",
    "metric_history",
    "registry_tracking",
    "setup_tracking",
]

log = get_logger(__name__)


def import_mlflow() -> ModuleType:
    """Import ``mlflow`` with telemetry off (unless the user already decided otherwise).

    Also quiets what mlflow and its database layer write to stderr on routine work (INFO lines
    when a store is created, a deprecation warning from SQLAlchemy 2.1 inside mlflow's store):
    warnings and errors still show. Notebook cells graded on an empty stderr rely on it.
    """
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    warnings.filterwarnings("ignore", message=r".*``noload`` loader strategy is deprecated", module=r"mlflow\.")
    first_import = "mlflow" not in sys.modules
    import mlflow
    import mlflow.pytorch  # a lazy submodule: importing it makes it an attribute of mlflow

    if first_import:  # mlflow sets its logger to INFO when imported; quiet it once, users may re-enable
        logging.getLogger("mlflow").setLevel(logging.WARNING)
        logging.getLogger("alembic").setLevel(logging.WARNING)
    return mlflow


def local_tracking_uri(root: str | Path) -> str:
    """``sqlite:///`` URI of the database file ``<root>/mlflow.db`` (absolute, so any working directory works)."""
    return f"sqlite:///{Path(root).expanduser().resolve() / 'mlflow.db'}"


@dataclass(frozen=True)
class Tracking:
    """Where runs and models go: one tracking store, its registry, and one experiment in it."""

    tracking_uri: str
    experiment_name: str
    experiment_id: str
    artifact_location: str | None  # None: the tracking server chooses

    def client(self) -> MlflowClient:
        """A client bound to this store (tracking and registry), independent of mlflow's global state."""
        mlflow = import_mlflow()
        client: MlflowClient = mlflow.MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
        return client

    def activate(self) -> None:
        """Point mlflow's fluent API (``mlflow.start_run``, ``mlflow.log_metric``...) at this store and experiment."""
        mlflow = import_mlflow()
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)
        if self.experiment_id:  # empty for a registry-only handle (see registry_tracking)
            mlflow.set_experiment(experiment_id=self.experiment_id)


def setup_tracking(
    experiment: str = "mlcraft", *, root: str | Path = "mlruns", tracking_uri: str | None = None, activate: bool = True
) -> Tracking:
    """Create (or reopen) ``experiment`` in a local SQLite store under ``root``, or on ``tracking_uri``.

    Args:
        experiment: experiment name; created on first use.
        root: folder of the local store (``mlflow.db`` and ``artifacts/``); ignored with ``tracking_uri``.
        tracking_uri: e.g. ``"http://127.0.0.1:5000"`` or another ``sqlite:///`` file. The
            environment variable ``MLFLOW_TRACKING_URI`` is deliberately not read: pass it here.
        activate: also point mlflow's fluent API at this store (see :meth:`Tracking.activate`).
    """
    if not experiment:
        raise ValueError("experiment name must be a non-empty string")
    artifact_location: str | None = None
    if tracking_uri is None:
        root_path = Path(root).expanduser().resolve()
        root_path.mkdir(parents=True, exist_ok=True)
        tracking_uri = local_tracking_uri(root_path)
        artifact_location = (root_path / "artifacts").as_uri()
    mlflow = import_mlflow()
    client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        experiment_id = client.create_experiment(experiment, artifact_location=artifact_location)
    else:
        experiment_id, artifact_location = found.experiment_id, found.artifact_location
    tracking = Tracking(tracking_uri, experiment, str(experiment_id), artifact_location)
    if activate:
        tracking.activate()
    log.info("tracking", uri=tracking_uri, experiment=experiment, experiment_id=tracking.experiment_id)
    return tracking


def registry_tracking(tracking_uri: str) -> Tracking:
    """A handle on an existing store for registry work only (serving): no experiment is created or set."""
    if not tracking_uri:
        raise ValueError("tracking_uri must be a non-empty URI such as sqlite:///path/mlflow.db")
    return Tracking(tracking_uri, "", "", None)


def flatten_params(params: BaseModel | Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config -> ``{"a.b": "value"}`` strings, as MLflow params are (lists and tuples as JSON)."""
    items = params.model_dump(mode="json") if isinstance(params, BaseModel) else dict(params)
    flat: dict[str, str] = {}
    for key, value in items.items():
        name = f"{prefix}{key}"
        if isinstance(value, BaseModel | Mapping):
            flat.update(flatten_params(value, prefix=f"{name}."))
        elif isinstance(value, list | tuple):
            flat[name] = json.dumps(list(value))
        else:
            flat[name] = str(value)
    return flat


class MLflowCallback(Callback):
    """Logs a :class:`~mlcraft.training.Trainer` run to MLflow.

    On ``fit`` start: the training config as params (and as ``config/training.json``), the number
    of parameters, ``extra_params`` (e.g. the model config). After each logged step: ``train_loss``,
    ``lr``, ``grad_norm``, ``epoch`` at that optimizer step; after each evaluation: every
    ``val_*`` metric. At the end: ``best_<monitor>``, and the run is ended if the callback
    started it. If a fluent run is active (``with mlflow.start_run():``) it logs into that run.

    Metrics of one hook go in one ``log_batch`` call (one database transaction).
    """

    def __init__(
        self,
        tracking: Tracking,
        *,
        run_name: str | None = None,
        tags: Mapping[str, str] | None = None,
        extra_params: BaseModel | Mapping[str, Any] | None = None,
    ) -> None:
        self.tracking = tracking
        self.run_name, self.tags, self.extra_params = run_name, dict(tags or {}), extra_params
        self.run_id: str | None = None
        self._owns_run = False
        self._client: MlflowClient | None = None

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = self.tracking.client()
        return self._client

    def on_fit_start(self, trainer: Trainer) -> None:
        if self.run_id is not None:  # a second fit() of the same run (paused with until_step, or resumed)
            return
        mlflow = import_mlflow()
        active = mlflow.active_run()
        if active is not None:
            self.run_id = active.info.run_id
        else:
            run = self.client.create_run(self.tracking.experiment_id, run_name=self.run_name, tags=self.tags)
            self.run_id, self._owns_run = run.info.run_id, True
        params = flatten_params(trainer.config, prefix="train.")
        params["model.parameters"] = str(sum(p.numel() for p in trainer.model.parameters()))
        params["model.class"] = type(trainer.model).__name__
        if self.extra_params is not None:
            params.update(flatten_params(self.extra_params))
        self.client.log_batch(self.run_id, params=[mlflow.entities.Param(k, v) for k, v in params.items()])
        if active is not None and self.tags:
            self.client.log_batch(self.run_id, tags=[mlflow.entities.RunTag(k, v) for k, v in self.tags.items()])
        self.client.log_dict(self.run_id, trainer.config.model_dump(mode="json"), "config/training.json")
        log.info("mlflow run", run_id=self.run_id, experiment=self.tracking.experiment_name)

    def _log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        if self.run_id is None:
            raise RuntimeError("MLflowCallback got metrics before on_fit_start; pass it to the Trainer's callbacks")
        mlflow = import_mlflow()
        now = int(time.time() * 1000)
        batch = [mlflow.entities.Metric(key, float(value), now, step) for key, value in metrics.items()]
        self.client.log_batch(self.run_id, metrics=batch)

    def on_step_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        renamed = {("train_loss" if k == "loss" else k): v for k, v in metrics.items() if k not in ("step", "skipped")}
        self._log_metrics(renamed, int(metrics["step"]))

    def on_eval_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        self._log_metrics({k: v for k, v in metrics.items() if k != "step"}, int(metrics["step"]))

    def on_fit_end(self, trainer: Trainer) -> None:
        if self.run_id is None:
            return
        if trainer.state.best_metric is not None:
            self._log_metrics({f"best_{trainer.config.monitor}": trainer.state.best_metric}, trainer.state.step)
        if self._owns_run and trainer.finished:  # a paused fit(until_step=...) keeps the run open
            self.client.set_terminated(self.run_id, status="FINISHED")


def log_torch_model(
    model: nn.Module,
    example: np.ndarray,
    *,
    run_id: str,
    tracking: Tracking,
    name: str = "model",
) -> ModelInfo:
    """Log ``model`` (in eval mode) to run ``run_id`` as an MLflow PyTorch model in the ``pt2`` format.

    ``example`` (float32 ``[B >= 2, F]``) traces the graph and defines the signature
    ``Tensor(float32, (-1, F))``: the batch axis is dynamic, so do not pass a single row.
    Pip requirements are given explicitly (``torch``, ``numpy``), which spares mlflow a
    subprocess that re-imports the model to infer them. Register the result with
    :func:`mlcraft.mlops.registry.register_model` (``info.model_uri``).
    """
    if example.ndim != 2 or example.shape[0] < 2:
        raise ValueError(f"example must be [B >= 2, F] so the batch axis stays dynamic, got shape {example.shape}")
    mlflow = import_mlflow()
    from mlflow.models import infer_signature

    model = model.eval()
    example = np.ascontiguousarray(example, dtype=np.float32)
    with torch.inference_mode():
        output = model(torch.from_numpy(example)).numpy()
    signature = infer_signature(example, output)
    tracking.activate()
    active = mlflow.active_run()
    same_run = active is not None and active.info.run_id == run_id
    with nullcontext() if same_run else mlflow.start_run(run_id=run_id, nested=active is not None):
        info: ModelInfo = mlflow.pytorch.log_model(
            model,
            name=name,
            input_example=example,
            signature=signature,
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", f"numpy=={np.__version__}"],
            serialization_format="pt2",
        )
    return info


def log_figure(tracking: Tracking, run_id: str, figure: Figure, artifact_file: str) -> None:
    """Save a matplotlib figure as an artifact of the run (``artifact_file`` like ``"plots/loss.png"``)."""
    tracking.client().log_figure(run_id, figure, artifact_file)


def metric_history(tracking: Tracking, run_id: str, key: str) -> list[tuple[int, float]]:
    """``[(step, value), ...]`` of one metric of a run, sorted by step (read back from the store)."""
    history = tracking.client().get_metric_history(run_id, key)
    return sorted((int(m.step), float(m.value)) for m in history)
