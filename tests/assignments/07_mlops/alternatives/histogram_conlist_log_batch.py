"""A different correct solution: PSI from ``numpy.histogram`` with infinite outer edges, percentiles
with ``torch.sort`` and ``torch.lerp`` in float64, schemas from ``conlist`` and ``confloat`` with
bounds, parity with the row and batch runs split by ``numpy.array_split``, and runs logged in two
``log_batch`` calls through ``MlflowClient``."""

# %% grade_id=psi-answer
import numpy as np


def psi(reference, live, bins: int = 10, floor: float = 1e-4) -> float:
    """PSI of two windows."""
    ref = np.asarray(reference, dtype=float).ravel()
    cur = np.asarray(live, dtype=float).ravel()
    if bins < 2 or ref.size == 0 or cur.size == 0:
        raise ValueError(f"need bins >= 2 and two non-empty windows (bins={bins}, sizes {ref.size}, {cur.size})")
    if np.isnan(ref).any() or np.isnan(cur).any() or np.isinf(ref).any() or np.isinf(cur).any():
        raise ValueError("windows must be finite")
    inner = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
    edges = np.concatenate(([-np.inf], inner, [np.inf]))
    r = np.clip(np.histogram(ref, edges)[0] / ref.size, floor, None)
    q = np.clip(np.histogram(cur, edges)[0] / cur.size, floor, None)
    return float(((q - r) * (np.log(q) - np.log(r))).sum())


# %% grade_id=latency-answer
import torch


def latency_percentiles(seconds) -> dict[str, float]:
    """Latency summary in milliseconds."""
    t = torch.as_tensor(list(seconds), dtype=torch.float64) * 1e3
    if t.numel() == 0:
        raise ValueError("empty latencies")
    if torch.isnan(t).any() or (t < 0).any():
        bad = t[torch.isnan(t) | (t < 0)][0].item() / 1e3
        raise ValueError(f"bad latency: {bad}")
    s = torch.sort(t).values
    n = s.numel()
    result = {"mean": t.mean().item()}
    for q in (50, 90, 99):
        pos = torch.tensor((n - 1) * q / 100.0, dtype=torch.float64)
        lo = int(pos.floor())
        hi = min(lo + 1, n - 1)
        result[f"p{q}"] = torch.lerp(s[lo], s[hi], pos - lo).item()
    return result


# %% grade_id=schema-answer
from pydantic import BaseModel, ConfigDict, confloat, conlist

_Num = confloat(strict=True, allow_inf_nan=False, ge=-FLOAT32_MAX, le=FLOAT32_MAX)
_Row = conlist(_Num, min_length=N_FEATURES, max_length=N_FEATURES)


class PredictRequest(BaseModel):
    """A row."""

    model_config = ConfigDict(extra="forbid")
    features: _Row


class BatchRequest(BaseModel):
    """Rows."""

    model_config = ConfigDict(extra="forbid")
    instances: conlist(_Row, min_length=1, max_length=MAX_BATCH)


# %% grade_id=parity-answer
import numpy as np
import onnxruntime as ort
import torch
from torch import nn


def check_parity(model: nn.Module, onnx_path, inputs: torch.Tensor, atol: float = 1e-5) -> float:
    """Max abs error of the ONNX graph against eager at batch sizes 1 and N."""
    if inputs.dim() != 2:
        raise ValueError(f"expected a 2-D input, got {inputs.dim()} dimensions")
    n = inputs.shape[0]
    if n == 0:
        raise ValueError("no rows to compare")
    model.train(False)
    with torch.no_grad():
        ref = model(inputs).to("cpu").numpy().astype(np.float64)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (inp,) = sess.get_inputs()
    x = inputs.to("cpu").numpy().astype(np.float32, copy=True)
    errors = []
    for chunks in (np.array_split(x, n), [x]):
        out = np.vstack([sess.run(None, {inp.name: c})[0] for c in chunks]).astype(np.float64)
        errors.append(np.abs(out - ref).max())
    err = float(max(errors))
    if not err <= atol:
        raise AssertionError(f"max abs error {err:.2e} exceeds atol {atol:.0e}")
    return err


# %% grade_id=tracking-answer
import time


def log_run(tracking_uri: str, experiment: str, params: dict, metrics: dict) -> str:
    """One run, logged in batches."""
    from mlflow.entities import Metric, Param

    client = mlflow.MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    exp_id = exp.experiment_id if exp else client.create_experiment(experiment)
    run = client.create_run(exp_id)
    now = int(time.time() * 1000)
    client.log_batch(
        run.info.run_id,
        metrics=[Metric(k, float(v), now, int(s)) for k, pairs in metrics.items() for s, v in pairs],
        params=[Param(k, str(v)) for k, v in params.items()],
    )
    client.set_terminated(run.info.run_id)
    return run.info.run_id


# %% grade_id=read-run-answer
def read_run(tracking_uri: str, run_id: str) -> tuple[dict[str, str], dict[str, list[tuple[int, float]]]]:
    """Params and metric histories."""
    client = mlflow.MlflowClient(tracking_uri)
    run = client.get_run(run_id)
    metrics = {}
    for key in run.data.metrics:
        metrics[key] = sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))
    return run.data.params, metrics


# %% grade_id=drift-flags-answer
import numpy as np
import scipy.stats


def drift_flags(reference, live, names, psi_threshold: float = 0.2, alpha: float = 0.01) -> list[str]:
    """Drifted features, column by column over the transposed windows."""
    ref = np.array(reference, dtype=np.float64, copy=True)
    cur = np.array(live, dtype=np.float64, copy=True)
    if ref.ndim != 2 or cur.ndim != 2:
        raise ValueError(f"expected 2-D windows, got {ref.ndim}-D and {cur.ndim}-D")
    if ref.shape[1] != cur.shape[1] or len(names) != ref.shape[1]:
        raise ValueError(f"shapes {ref.shape}, {cur.shape} and {len(names)} names do not agree")
    psis = [psi(a, b) for a, b in zip(ref.T, cur.T, strict=True)]
    pvalues = [scipy.stats.ks_2samp(a, b).pvalue for a, b in zip(ref.T, cur.T, strict=True)]
    return [n for n, v, p in zip(names, psis, pvalues, strict=True) if v >= psi_threshold or p * len(names) < alpha]
