"""A different correct solution, written from the task statements alone: PSI from cumulative counts
(``searchsorted`` of each inner edge in the sorted windows, then differences), percentiles in pure
Python floats with ``sorted`` and ``math.fsum``, request schemas from ``StrictFloat`` with an
``AfterValidator`` and ``annotated_types.Len``, parity with one ``session.run`` per row via
``torch.unbind`` and the error taken in float64 torch, runs logged one call at a time through
``MlflowClient`` (experiment found with ``search_experiments``), histories sorted by a key
function, and Bonferroni flags from a vectorised ``ks_2samp(..., axis=0)``."""

# %% grade_id=psi-answer
import math

import numpy as np


def psi(reference, live, bins: int = 10, floor: float = 1e-4) -> float:
    """PSI with bin counts taken as differences of cumulative counts below each edge."""
    if bins < 2:
        raise ValueError(f"bins must be at least 2, got {bins}")
    windows = []
    for name, window in (("reference", reference), ("live", live)):
        values = np.sort(np.array(window, dtype=np.float64).reshape(-1))
        if values.size == 0:
            raise ValueError(f"the {name} window is empty")
        if not np.isfinite(values).all():
            raise ValueError(f"the {name} window holds NaN or an infinity")
        windows.append(values)
    ref, cur = windows
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
    # number of values strictly below each edge: bin k holds those >= e_{k-1} and < e_k
    below_ref = [0, *np.searchsorted(ref, edges, side="left").tolist(), ref.size]
    below_cur = [0, *np.searchsorted(cur, edges, side="left").tolist(), cur.size]
    terms = []
    for k in range(len(edges) + 1):
        r = max((below_ref[k + 1] - below_ref[k]) / ref.size, floor)
        q = max((below_cur[k + 1] - below_cur[k]) / cur.size, floor)
        terms.append((q - r) * math.log(q / r))
    total = math.fsum(terms)
    return float(total)


# %% grade_id=latency-answer
import math


def latency_percentiles(seconds) -> dict[str, float]:
    """Mean and linearly interpolated percentiles, in milliseconds, with plain Python floats."""
    values = [float(s) for s in seconds]
    if not values:
        raise ValueError("latency_percentiles needs at least one timing")
    for s in values:
        if math.isnan(s) or s < 0:
            raise ValueError(f"a latency must be a non-negative number, got {s}")
    ordered = sorted(v * 1000.0 for v in values)
    n = len(ordered)

    def pct(q: float) -> float:
        pos = (n - 1) * q / 100
        lo = math.floor(pos)
        hi = min(lo + 1, n - 1)
        return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)

    return {"mean": math.fsum(ordered) / n, "p50": pct(50), "p90": pct(90), "p99": pct(99)}


# %% grade_id=schema-answer
import math
from typing import Annotated

from annotated_types import Len
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictFloat


def _finite_float32(x: float) -> float:
    if not math.isfinite(x) or not -FLOAT32_MAX <= x <= FLOAT32_MAX:
        raise ValueError(f"{x} is not a finite float32 number")
    return float(x)


Feature = Annotated[StrictFloat, AfterValidator(_finite_float32)]
Row = Annotated[list[Feature], Len(N_FEATURES, N_FEATURES)]


class PredictRequest(BaseModel):
    """One row."""

    model_config = ConfigDict(extra="forbid", strict=True)
    features: Row


class BatchRequest(BaseModel):
    """1 to MAX_BATCH rows."""

    model_config = ConfigDict(extra="forbid", strict=True)
    instances: Annotated[list[Row], Field(min_length=1, max_length=MAX_BATCH)]


# %% grade_id=parity-answer
import onnxruntime as ort
import torch
from torch import nn


def check_parity(model: nn.Module, onnx_path, inputs: torch.Tensor, atol: float = 1e-5) -> float:
    """Max |eager - ONNX| over each row alone and over the whole batch, compared in float64 torch."""
    if inputs.dim() != 2:
        raise ValueError(f"inputs must be (N, F), got shape {tuple(inputs.shape)}")
    if inputs.size(0) == 0:
        raise ValueError("inputs has no rows")
    model.eval()
    with torch.no_grad():
        eager = model(inputs).detach().to("cpu", torch.float64)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    host = inputs.detach().to("cpu", torch.float32)
    single = torch.stack(
        [torch.from_numpy(session.run(None, {name: row.unsqueeze(0).numpy()})[0][0]) for row in torch.unbind(host)]
    ).double()
    batched = torch.from_numpy(session.run(None, {name: host.numpy()})[0]).double()
    error = max((single - eager).abs().max().item(), (batched - eager).abs().max().item())
    if error > atol:
        raise AssertionError(f"ONNX output differs from eager by {error:.6g} > atol={atol}")
    return float(error)


# %% grade_id=tracking-answer
def log_run(tracking_uri: str, experiment: str, params: dict, metrics: dict) -> str:
    """One finished run, logged param by param and point by point with MlflowClient."""
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    found = [e for e in client.search_experiments() if e.name == experiment]
    experiment_id = found[0].experiment_id if found else client.create_experiment(experiment)
    run_id = client.create_run(experiment_id).info.run_id
    for key in params:
        client.log_param(run_id, key, params[key])
    for key, pairs in metrics.items():
        for step, value in pairs:
            client.log_metric(run_id, key, value, step=step)
    client.set_terminated(run_id, status="FINISHED")
    return run_id


# %% grade_id=read-run-answer
def read_run(tracking_uri: str, run_id: str) -> tuple[dict[str, str], dict[str, list[tuple[int, float]]]]:
    """Params and the step-sorted history of every metric."""
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    data = client.get_run(run_id).data
    params = {key: value for key, value in data.params.items()}
    histories = {}
    for key in data.metrics:
        points = sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)
        histories[key] = [(int(m.step), float(m.value)) for m in points]
    return params, histories


# %% grade_id=drift-flags-answer
import numpy as np
import scipy.stats


def drift_flags(reference, live, names, psi_threshold: float = 0.2, alpha: float = 0.01) -> list[str]:
    """Flag columns by PSI or by KS p-values (all columns at once) under a Bonferroni level."""
    if np.ndim(reference) != 2 or np.ndim(live) != 2:
        raise ValueError(f"windows must be 2-D, got {np.ndim(reference)}-D and {np.ndim(live)}-D")
    f = reference.shape[1]
    if live.shape[1] != f:
        raise ValueError(f"reference has {f} columns, live has {live.shape[1]}")
    if len(names) != f:
        raise ValueError(f"{len(names)} names for {f} columns")
    if f == 0:
        return []
    pvalues = np.atleast_1d(scipy.stats.ks_2samp(reference, live, axis=0).pvalue)
    psis = np.array([psi(reference[:, j], live[:, j]) for j in range(f)])
    flagged = np.flatnonzero((psis >= psi_threshold) | (pvalues < alpha / f))
    return [names[j] for j in flagged]
