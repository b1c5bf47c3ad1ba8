"""Shared fixtures for the 07_mlops tests: offline MLflow, one trained model, one SQLite store,
and a check that no test leaves a server or worker thread running."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from mlcraft.data.tabular import make_tabular_data
from mlcraft.mlops.tracking import Tracking, log_torch_model, setup_tracking
from mlcraft.models.tabular import TabularMLP

# Set before anything imports mlflow: no telemetry, nothing leaves the machine.
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["DO_NOT_TRACK"] = "true"
os.environ.pop("MLFLOW_TRACKING_URI", None)
os.environ.pop("MLFLOW_REGISTRY_URI", None)

#: Threads our code starts; none may outlive the test that started it.
OUR_THREAD_PREFIXES = ("uvicorn-", "load-")


@pytest.fixture(autouse=True, scope="session")
def _single_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _no_leftover_threads() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    leftover = [
        t.name
        for t in threading.enumerate()
        if t not in before and t.is_alive() and t.name.startswith(OUR_THREAD_PREFIXES)
    ]
    assert not leftover, f"test left threads running: {leftover}"


@pytest.fixture(scope="session")
def live_rows() -> np.ndarray:
    """Held-out rows (float32 ``[300, 8]``) for parity checks and requests."""
    return make_tabular_data(300, seed=123).features


@pytest.fixture(scope="session")
def store_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of the session's SQLite tracking store (created once: the schema migration takes seconds)."""
    return tmp_path_factory.mktemp("mlruns")


@pytest.fixture(scope="session")
def logged(store_root: Path, trained_model: TabularMLP, live_rows: np.ndarray) -> tuple[Tracking, str]:
    """``(tracking, model_uri)``: the trained model logged once to a run of the experiment
    ``registry``; tests register it as many versions (under their own model names) as they need."""
    tracking = setup_tracking("registry", root=store_root)
    client = tracking.client()
    run = client.create_run(tracking.experiment_id, run_name="for-registry")
    info = log_torch_model(trained_model, live_rows[:16], run_id=run.info.run_id, tracking=tracking)
    client.set_terminated(run.info.run_id)
    return tracking, info.model_uri
