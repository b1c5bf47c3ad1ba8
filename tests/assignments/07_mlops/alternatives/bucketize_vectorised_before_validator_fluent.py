"""A different correct solution, written from the task statements alone: PSI with ``torch.bucketize``
(``right=True``) and ``torch.bincount`` in float64, percentiles vectorised in NumPy (all three
positions at once, gathered with fancy indexing), request numbers checked by a ``BeforeValidator``
(type, finiteness and range by hand, big ints compared before any conversion), parity errors taken
in float32 NumPy with a row loop of ``x[i:i + 1]`` slices, runs logged with the fluent API
(``create_experiment`` first, falling back to the existing one on ``MlflowException``, an explicit
``end_run`` in ``finally``, ``log_metrics`` per step), histories sorted in place, and flags picked
with ``itertools.compress``."""

# %% grade_id=psi-answer
import numpy as np
import torch


def psi(reference, live, bins: int = 10, floor: float = 1e-4) -> float:
    """PSI with torch: bucketize against the reference's quantile edges, count with bincount."""
    if bins < 2:
        raise ValueError(f"bins={bins}: need at least 2 bins")
    ref = torch.as_tensor(np.asarray(reference, dtype=np.float64)).flatten()
    cur = torch.as_tensor(np.asarray(live, dtype=np.float64)).flatten()
    if ref.numel() == 0 or cur.numel() == 0:
        raise ValueError("psi needs two non-empty windows")
    if not (torch.isfinite(ref).all() and torch.isfinite(cur).all()):
        raise ValueError("psi windows must be finite (no NaN, no infinity)")
    inner = np.unique(np.quantile(ref.numpy(), np.linspace(0, 1, bins + 1)[1:-1]))
    edges = torch.as_tensor(inner)
    k = edges.numel() + 1
    r = torch.bincount(torch.bucketize(ref, edges, right=True), minlength=k).double() / ref.numel()
    q = torch.bincount(torch.bucketize(cur, edges, right=True), minlength=k).double() / cur.numel()
    r = torch.clamp(r, min=floor)
    q = torch.clamp(q, min=floor)
    return float(((q - r) * torch.log(q / r)).sum().item())


# %% grade_id=latency-answer
import numpy as np


def latency_percentiles(seconds) -> dict[str, float]:
    """All three percentiles at once: positions, floors and neighbours as arrays."""
    raw = np.array(seconds, dtype=np.float64).reshape(-1)
    if raw.size == 0:
        raise ValueError("empty sequence of latencies")
    bad = np.flatnonzero(np.isnan(raw) | (raw < 0))
    if bad.size:
        raise ValueError(f"latency {raw[bad[0]]} at index {bad[0]} is NaN or negative")
    ms = np.sort(raw * 1000.0)
    n = ms.size
    qs = np.array([50.0, 90.0, 99.0])
    pos = (n - 1) * qs / 100
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    values = ms[lo] + (ms[hi] - ms[lo]) * (pos - lo)
    out = {"mean": float(np.mean(ms))}
    out.update({f"p{int(q)}": float(v) for q, v in zip(qs, values, strict=True)})
    return out


# %% grade_id=schema-answer
import math
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


def _number(x):
    # bool is a subclass of int: check the exact type, not isinstance
    if type(x) not in (int, float):
        raise ValueError(f"expected a number, got {type(x).__name__} {x!r}")
    if isinstance(x, float) and not math.isfinite(x):
        raise ValueError(f"{x} is not finite")
    if abs(x) > FLOAT32_MAX:
        raise ValueError(f"{x} is beyond the float32 range")
    return float(x)


Number = Annotated[float, BeforeValidator(_number)]
Row = Annotated[list[Number], Field(min_length=N_FEATURES, max_length=N_FEATURES)]


class PredictRequest(BaseModel):
    """One row of N_FEATURES numbers."""

    model_config = ConfigDict(strict=True, extra="forbid")
    features: Row


class BatchRequest(BaseModel):
    """Between 1 and MAX_BATCH rows."""

    model_config = ConfigDict(strict=True, extra="forbid")
    instances: Annotated[list[Row], Field(min_length=1, max_length=MAX_BATCH)]


# %% grade_id=parity-answer
import numpy as np
import onnxruntime as ort
import torch
from torch import nn


def check_parity(model: nn.Module, onnx_path, inputs: torch.Tensor, atol: float = 1e-5) -> float:
    """Errors in float32 NumPy: N one-row runs, then one N-row run."""
    if len(inputs.shape) != 2:
        raise ValueError(f"expected inputs of shape (N, F), got {tuple(inputs.shape)}")
    if inputs.shape[0] < 1:
        raise ValueError("expected at least one row")
    model.eval()
    with torch.set_grad_enabled(False):
        eager = model(inputs).cpu().numpy()
    x = inputs.cpu().numpy().astype(np.float32)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0].name
    one_by_one = np.concatenate([session.run(None, {feed: x[i : i + 1]})[0] for i in range(x.shape[0])])
    all_at_once = session.run(None, {feed: x})[0]
    error = float(max(np.abs(one_by_one - eager).max(), np.abs(all_at_once - eager).max()))
    if not error <= atol:
        raise AssertionError(f"parity error {error} is above atol {atol}")
    return error


# %% grade_id=tracking-answer
def log_run(tracking_uri: str, experiment: str, params: dict, metrics: dict) -> str:
    """Fluent API: create (or find) the experiment, log, end the run in ``finally``."""
    from mlflow.exceptions import MlflowException

    mlflow.set_tracking_uri(tracking_uri)
    try:
        experiment_id = mlflow.create_experiment(experiment)
    except MlflowException:
        experiment_id = mlflow.get_experiment_by_name(experiment).experiment_id
    run = mlflow.start_run(experiment_id=experiment_id)
    try:
        for key, value in params.items():
            mlflow.log_param(key, value)
        for key, pairs in metrics.items():
            for step, value in pairs:
                mlflow.log_metrics({key: value}, step=step)
    finally:
        mlflow.end_run()
    return run.info.run_id


# %% grade_id=read-run-answer
from operator import attrgetter


def read_run(tracking_uri: str, run_id: str) -> tuple[dict[str, str], dict[str, list[tuple[int, float]]]]:
    """Params and histories; each history sorted in place by step."""
    client = mlflow.tracking.MlflowClient(tracking_uri=tracking_uri)
    run = client.get_run(run_id)
    out = {}
    for key in sorted(run.data.metrics):
        history = list(client.get_metric_history(run_id, key))
        history.sort(key=attrgetter("step"))
        out[key] = [(int(m.step), float(m.value)) for m in history]
    return dict(run.data.params), out


# %% grade_id=drift-flags-answer
from itertools import compress

import scipy.stats


def drift_flags(reference, live, names, psi_threshold: float = 0.2, alpha: float = 0.01) -> list[str]:
    """A mask over the columns, then ``compress`` over the names."""
    if reference.ndim != 2:
        raise ValueError(f"reference must be 2-D, got shape {reference.shape}")
    if live.ndim != 2:
        raise ValueError(f"live must be 2-D, got shape {live.shape}")
    (_, n_cols), (_, m_cols) = reference.shape, live.shape
    if n_cols != m_cols or len(names) != n_cols:
        raise ValueError(f"{n_cols} and {m_cols} columns, {len(names)} names")
    level = alpha / n_cols if n_cols else alpha
    mask = []
    for j in range(n_cols):
        a, b = reference[:, j], live[:, j]
        by_psi = psi(a, b) >= psi_threshold
        by_ks = scipy.stats.ks_2samp(a, b).pvalue < level
        mask.append(by_psi or by_ks)
    return list(compress(names, mask))
