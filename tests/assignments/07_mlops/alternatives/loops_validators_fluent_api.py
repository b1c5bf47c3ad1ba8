"""A different correct solution: PSI with a Python loop and ``bisect`` over the merged edges,
percentiles interpolated on a NumPy-sorted array, request schemas in strict mode checked by
``field_validator``s, parity over a list of chunkings under ``torch.inference_mode``, and runs logged
with MLflow's fluent API (``set_experiment``, ``start_run``)."""

# %% grade_id=psi-answer
import bisect
import math

import numpy as np


def psi(reference, live, bins: int = 10, floor: float = 1e-4) -> float:
    """Population stability index of ``live`` against ``reference``."""
    if bins < 2:
        raise ValueError(f"bins must be >= 2, got {bins}")
    ref = [float(x) for x in reference]
    cur = [float(x) for x in live]
    if not ref or not cur:
        raise ValueError("both windows must be non-empty")
    if not all(math.isfinite(x) for x in ref + cur):
        raise ValueError("the windows must not contain NaN or infinities")
    levels = np.linspace(0, 1, bins + 1)[1:-1]  # the statement's levels exactly (not i / bins)
    edges = sorted(set(np.quantile(np.array(ref), levels).tolist()))
    counts_ref = [0] * (len(edges) + 1)
    counts_cur = [0] * (len(edges) + 1)
    for x in ref:
        counts_ref[bisect.bisect_right(edges, x)] += 1
    for x in cur:
        counts_cur[bisect.bisect_right(edges, x)] += 1
    total = 0.0
    for cr, cc in zip(counts_ref, counts_cur, strict=True):
        r = max(cr / len(ref), floor)
        q = max(cc / len(cur), floor)
        total += (q - r) * math.log(q / r)
    return total


# %% grade_id=latency-answer
import math

import numpy as np


def latency_percentiles(seconds) -> dict[str, float]:
    """Mean, p50, p90 and p99 in milliseconds."""
    ms = np.array(seconds, dtype=np.float64) * 1000.0
    if ms.size == 0:
        raise ValueError("no latencies")
    bad = ms[np.isnan(ms) | (ms < 0)]
    if bad.size:
        raise ValueError(f"invalid latency {bad[0] / 1000.0}")
    ordered = np.sort(ms)
    n = ordered.size
    out = {"mean": float(ms.sum() / n)}
    for q in (50, 90, 99):
        pos = (n - 1) * q / 100
        lo = math.floor(pos)
        hi = min(lo + 1, n - 1)
        frac = pos - lo
        out[f"p{q}"] = float(ordered[lo] * (1 - frac) + ordered[hi] * frac) if frac else float(ordered[lo])
    return out


# %% grade_id=schema-answer
import math

from pydantic import BaseModel, ConfigDict, field_validator


def _check_row(row: list[float]) -> list[float]:
    if len(row) != N_FEATURES:
        raise ValueError(f"a row needs {N_FEATURES} features, got {len(row)}")
    for i, x in enumerate(row):
        if not math.isfinite(x) or abs(x) > FLOAT32_MAX:
            raise ValueError(f"feature {i} = {x} is not a finite float32 number")
    return row


class PredictRequest(BaseModel):
    """One row of features."""

    model_config = ConfigDict(strict=True, extra="forbid")
    features: list[float]

    @field_validator("features")
    @classmethod
    def _valid(cls, value: list[float]) -> list[float]:
        return _check_row(value)


class BatchRequest(BaseModel):
    """A batch of rows."""

    model_config = ConfigDict(strict=True, extra="forbid")
    instances: list[list[float]]

    @field_validator("instances")
    @classmethod
    def _valid(cls, value: list[list[float]]) -> list[list[float]]:
        if not 1 <= len(value) <= MAX_BATCH:
            raise ValueError(f"a batch has 1 to {MAX_BATCH} rows, got {len(value)}")
        return [_check_row(row) for row in value]


# %% grade_id=parity-answer
import numpy as np
import onnxruntime as ort
import torch
from torch import nn


def check_parity(model: nn.Module, onnx_path, inputs: torch.Tensor, atol: float = 1e-5) -> float:
    """Largest |eager - onnxruntime| at batch sizes 1 and N."""
    if inputs.ndim != 2 or len(inputs) < 1:
        raise ValueError(f"inputs must be (N >= 1, F), got {tuple(inputs.shape)}")
    model = model.eval()
    with torch.inference_mode():
        expected = model(inputs).float().cpu().numpy()
    rows = inputs.detach().to("cpu", torch.float32).numpy()
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0].name
    worst = 0.0
    for size in (1, len(rows)):
        outputs = [session.run(None, {feed: rows[start : start + size]})[0] for start in range(0, len(rows), size)]
        worst = max(worst, float(np.max(np.abs(np.concatenate(outputs) - expected))))
    assert worst <= atol, f"eager and ONNX outputs differ by up to {worst} (atol {atol})"
    return worst


# %% grade_id=tracking-answer
def log_run(tracking_uri: str, experiment: str, params: dict, metrics: dict) -> str:
    """Log one finished run; return its id."""
    mlflow.set_tracking_uri(tracking_uri)
    found = mlflow.set_experiment(experiment)
    with mlflow.start_run(experiment_id=found.experiment_id) as run:
        if params:
            mlflow.log_params(params)
        for name, pairs in metrics.items():
            for step, value in sorted(pairs):
                mlflow.log_metric(name, value, step=step)
    return run.info.run_id


# %% grade_id=read-run-answer
def read_run(tracking_uri: str, run_id: str) -> tuple[dict[str, str], dict[str, list[tuple[int, float]]]]:
    """Params and metric histories of a run."""
    client = mlflow.tracking.MlflowClient(tracking_uri)
    data = client.get_run(run_id).data
    history = {}
    for name in data.metrics:
        points = client.get_metric_history(run_id, name)
        history[name] = [(int(p.step), float(p.value)) for p in sorted(points, key=lambda p: (p.step, p.timestamp))]
    return {k: str(v) for k, v in data.params.items()}, history


# %% grade_id=drift-flags-answer
import numpy as np
from scipy.stats import ks_2samp


def drift_flags(reference, live, names, psi_threshold: float = 0.2, alpha: float = 0.01) -> list[str]:
    """Features flagged by PSI or by a Bonferroni-corrected KS test."""
    if np.ndim(reference) != 2 or np.ndim(live) != 2:
        raise ValueError("reference and live must be 2-D")
    n_features = np.shape(reference)[1]
    if np.shape(live)[1] != n_features or len(names) != n_features:
        raise ValueError(f"{n_features} reference columns, {np.shape(live)[1]} live columns, {len(names)} names")
    level = alpha / n_features
    out = []
    for j in range(n_features):
        a, b = reference[:, j], live[:, j]
        if ks_2samp(a, b).pvalue < level or psi(a, b) >= psi_threshold:
            out.append(names[j])
    return out
