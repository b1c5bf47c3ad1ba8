# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown] nbgrader={"grade": false, "grade_id": "intro", "locked": true, "schema_version": 3, "solution": false, "task": false}
# # Module 07 — The checks that keep a model honest in production
#
# **You will be able to**
# - measure drift with the population stability index and flag it with a multiple-testing rule;
# - report latency percentiles you computed yourself;
# - validate requests with a pydantic schema and check an ONNX export against eager PyTorch;
# - log and read back runs with MLflow.
#
# **Prerequisites**: lessons `00_orientation` and `07_mlops`; hypothesis tests and p-values at an introductory level.
#
# **Time**: reading 15 min; exercises 120 min; the reference solution runs top to bottom in under a minute on a 2-core
# CPU, hidden tests included.
#
# **Further reading**: ONNX Runtime and `torch.onnx.export` docs; MLflow *Tracking* docs; pydantic *Validators* docs; Holm, *A Simple Sequentially Rejective Multiple Test Procedure*, Scand. J. Statist. 1979.
#
# A model that scores well in a notebook still has to be shipped, served and watched. Each step
# has a small check that catches a large failure: a drift statistic that says the live data no
# longer looks like the training data, latency percentiles that show the slow requests a mean
# hides, a request schema that keeps a `NaN` out of the model, a parity check that proves the
# exported model computes what the trained one does, and a run record that lets you find out,
# months later, which settings produced the model that is serving. Each is a few lines long, and
# each has a classic mistake that raises no error and makes the check pass when it should fail.
#
# You will write them one by one and check each against the library that production uses:
#
# | Task | Function | Points |
# |------|----------|--------|
# | 1 | `psi(reference, live, bins=10, floor=1e-4)` | 3 |
# | 2 | `latency_percentiles(seconds)` | 2 |
# | 3 | `PredictRequest` and `BatchRequest` (pydantic request schemas) | 3 |
# | 4 | `check_parity(model, onnx_path, inputs, atol=1e-5)` | 3 |
# | 5 | `log_run(tracking_uri, experiment, params, metrics)` and `read_run(tracking_uri, run_id)` | 3 |
# | 6 | `drift_flags(reference, live, names, psi_threshold=0.2, alpha=0.01)` | 2 |
#
# **How this notebook works.** Replace each `raise NotImplementedError()` with your code, then
# run the test cell below it. The visible tests are a first check only: when the notebook is
# graded, each test cell also runs hidden tests. These check the edge cases named in the task
# statement, so read each statement to the end. Run the notebook from top to bottom before you
# submit, and do not change or delete the test cells.
#
# The tasks are independent of each other, except Task 6, which calls your `psi` from Task 1. Task 4 puts its model and inputs on `DEVICE`, the
# best device present (CUDA, then Apple MPS, then CPU), so your code must work on whatever
# device its input is on. Task 5 writes to a temporary MLflow store (a SQLite file) that the test
# creates and deletes; nothing reaches the network.
#
# **How grading works.** When your notebook is graded, your cells run in a sandbox and the
# test cells run in the grader, apart from your code: the tests call your functions with data
# (arrays, lists, numbers, strings...) and check what comes back; Tasks 1, 2 and 6 work this
# way. Parts of a test that need your code's objects are marked `@in_kernel`: they run beside
# your code and report what they saw, as data. Task 3 validates payloads with your pydantic
# classes and reports "accepted" (with the fields) or "rejected"; Task 4 rebuilds the test's
# model from its layers and weights, and its ONNX file from the file's bytes, to run your
# `check_parity`; Task 5 reads back with `MlflowClient` what your `log_run` stored, and runs
# your `read_run` on a copy of a store the test logged itself. The expected values (the PSI,
# the percentiles, the parity error from onnxruntime, the params and histories the test asked
# to log) are computed in the grader. So return exactly what each task asks for; nothing else
# in your notebook can change a test's verdict.
#
# Previous: lesson [`07_mlops`](../../course/07_mlops.ipynb). This is the last module.


# %%
# Set-up: on Colab, install the course package; everywhere else this cell does nothing.
import sys

if "google.colab" in sys.modules:
    import subprocess

    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "mlcraft[course] @ git+https://github.com/mlcraft/mlcraft"], check=True
    )


# %% nbgrader={"grade": false, "grade_id": "imports", "locked": true, "schema_version": 3, "solution": false, "task": false}
import math
import re
import tempfile
from pathlib import Path
from typing import Annotated

import numpy as np
import onnx
import onnxruntime as ort
import pydantic
import scipy.stats
import torch
from onnx import TensorProto, helper, numpy_helper
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator  # noqa: F401
from torch import nn

from mlcraft.classroom.testing import DEVICE, assert_close, call_without, grading_seed, in_kernel
from mlcraft.mlops.tracking import import_mlflow

# MLflow with telemetry off and its routine INFO lines quiet (it takes a few seconds to import).
mlflow = import_mlflow()
ort.set_default_logger_severity(3)  # onnxruntime: errors only

N_FEATURES = 8  # columns of a request row (Task 3)
MAX_BATCH = 64  # most rows in one batch request (Task 3)
FLOAT32_MAX = float(np.finfo(np.float32).max)  # about 3.4e38


def mlp_to_onnx(model, path, *, input_name="features", batch_size=None, tamper=None):
    """Write ``model``, an ``nn.Sequential`` of ``Linear``, ``ReLU`` and ``Dropout`` layers, as an ONNX graph.

    The graph (opset 17) takes ``input_name`` float32 ``(batch, F)`` and returns ``"logits"``. The batch
    axis is dynamic unless ``batch_size`` fixes it. Dropout is left out (it does nothing in eval mode).
    ``tamper(nodes, initializers, logits, input_name) -> name`` may add nodes after the last layer and
    return the name of the tensor to output instead: the hidden tests use it to build faulty exports.
    """
    nodes, initializers, current, width = [], [], input_name, None
    for i, layer in enumerate(model):
        if isinstance(layer, nn.Linear):
            w = layer.weight.detach().cpu().numpy().T.astype(np.float32)  # (in, out)
            b = layer.bias.detach().cpu().numpy().astype(np.float32)  # (out,)
            initializers += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
            nodes += [
                helper.make_node("MatMul", [current, f"w{i}"], [f"matmul{i}"]),
                helper.make_node("Add", [f"matmul{i}", f"b{i}"], [f"layer{i}"]),
            ]
            current, width = f"layer{i}", layer.out_features
        elif isinstance(layer, nn.ReLU):
            nodes.append(helper.make_node("Relu", [current], [f"layer{i}"]))
            current = f"layer{i}"
        elif not isinstance(layer, nn.Dropout):
            raise ValueError(f"mlp_to_onnx handles Linear, ReLU and Dropout, not {type(layer).__name__}")
    if tamper is not None:
        current = tamper(nodes, initializers, current, input_name)
    nodes.append(helper.make_node("Identity", [current], ["logits"]))
    batch = batch_size if batch_size is not None else "batch"
    n_in = next(layer.in_features for layer in model if isinstance(layer, nn.Linear))
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [batch, n_in])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, width])],
        initializers,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    return Path(path)


print(
    f"numpy {np.__version__}, torch {torch.__version__}, onnxruntime {ort.__version__}, "
    f"pydantic {pydantic.__version__}, mlflow {mlflow.__version__}; DEVICE = {DEVICE}"
)


# %% [markdown] nbgrader={"grade": false, "grade_id": "task-psi", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Task 1 — Population stability index (3 points)
#
# A model learned from data with a certain distribution. When the live inputs drift away from
# it (a new customer segment, a sensor recalibrated, a unit changed upstream), accuracy drops
# long before anyone sees labels. The **population stability index** (PSI) measures how far
# the live distribution of one feature has moved from a reference window (the training data,
# or last month's traffic). Cut the reference into bins, compute the fraction `r_i` of the
# reference and the fraction `l_i` of the live window in each bin, and sum
#
# $$\mathrm{PSI} = \sum_i (l_i - r_i) \ln\frac{l_i}{r_i}.$$
#
# A common rule of thumb: below 0.1 stable, 0.1 to 0.25 a moderate shift, above 0.25 a major one.
#
# Write `psi(reference, live, bins=10, floor=1e-4) -> float`:
#
# - `reference` and `live` are one-dimensional sequences of numbers (a NumPy array or a list),
#   of any lengths. Work in `float64`.
# - **Bin edges come from the reference only**, at its quantiles, so each bin holds about
#   `1/bins` of the reference. The inner edges are exactly
#   `numpy.unique(numpy.quantile(reference, numpy.linspace(0, 1, bins + 1)[1:-1]))`
#   (NumPy's default, linear quantiles). `numpy.unique` merges repeated edges, so a reference
#   with many ties (a count feature) gives fewer than `bins` bins. Use the levels exactly as
#   written: `numpy.arange(1, bins) / bins` or `i / bins` differ from `numpy.linspace` in the last
#   bit for some levels (`0.3` against `0.30000000000000004` for `bins=10`), which moves an edge
#   by a hair and a value lying exactly there into the other bin; the hidden tests have such values.
# - With `K - 1` inner edges `e_0 < ... < e_{K-2}`, there are `K` bins: bin 0 is `x < e_0`,
#   bin `i` is `e_{i-1} <= x < e_i`, the last bin is `x >= e_{K-2}`. So a value equal to an
#   edge goes into the bin **above** it (`numpy.searchsorted(edges, x, side="right")` gives a
#   value's bin), and live values below or above the whole reference go into the first or the
#   last bin.
# - The fraction of a window in a bin is its count in the bin divided by the window's length.
#   Both fractions are then **floored** at `floor`: `max(fraction, floor)`. Without the floor a
#   bin that is empty in one window makes the logarithm infinite (or `0 * ln 0`, NaN); with it,
#   an empty bin gives a large but finite term. Use the natural logarithm.
# - Identical windows give 0. A constant reference has one inner edge (its value `c`): bin 0
#   (`x < c`) is empty in the reference, floored to `floor`, and the reference is all in bin 1.
# - Raise `ValueError` if either window is empty or contains NaN or an infinity, or if
#   `bins < 2`.
# - Return a Python `float`. Do not modify the inputs.
#
# The hidden tests compare your PSI with a `float64` loop on normal, shifted, heavy-tailed and
# discrete windows, windows with empty bins, live values outside the reference's range, and a
# constant reference. Do not call the course package's `psi` or `bin_fractions`.


# %% nbgrader={"grade": false, "grade_id": "psi-answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def psi(reference, live, bins: int = 10, floor: float = 1e-4) -> float:
    """Population stability index of ``live`` against ``reference``, in reference-quantile bins."""
    ### BEGIN SOLUTION
    if bins < 2:
        raise ValueError(f"bins must be >= 2, got {bins}")
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(live, dtype=np.float64)
    for name, x in (("reference", ref), ("live", cur)):
        if x.ndim != 1 or x.size == 0:
            raise ValueError(f"{name} must be a non-empty 1-D sequence, got shape {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError(f"{name} contains NaN or infinite values")
    edges = np.unique(np.quantile(ref, np.linspace(0.0, 1.0, bins + 1)[1:-1]))  # (K-1,)
    k = edges.size + 1
    r = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=k) / ref.size  # (K,)
    lv = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=k) / cur.size  # (K,)
    r, lv = np.maximum(r, floor), np.maximum(lv, floor)
    return float(np.sum((lv - r) * np.log(lv / r)))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-psi", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# Reference 0..9 in 5 bins: inner edges 1.8, 3.6, 5.4, 7.2, two reference values per bin.
reference_1 = np.arange(10.0)
live_1 = np.array([0.0, 0.0, 0.0, 0.0, 5.0, 5.0, 9.0, 9.0, 9.0, 9.0])  # bins 0, 2 and 4; bins 1 and 3 empty
value = psi(reference_1, live_1, bins=5)
assert isinstance(value, float), f"psi should return a Python float, got {type(value).__name__}"
expected = 2 * (0.4 - 0.2) * math.log(0.4 / 0.2) + 2 * (1e-4 - 0.2) * math.log(1e-4 / 0.2)
assert_close(value, expected, rtol=1e-9, atol=1e-12, msg="PSI of the hand-computed example (two empty live bins)")
same = psi(reference_1, reference_1, bins=5)
assert abs(same) < 1e-12, f"identical windows should have PSI 0, got {same}"
try:
    psi(reference_1, [], bins=5)
except ValueError:
    pass
else:
    raise AssertionError("psi with an empty live window should raise ValueError")
### BEGIN HIDDEN TESTS
_forbidden_psi = ("mlcraft.mlops.drift.psi", "mlcraft.mlops.drift.bin_fractions")


def _psi_reference(reference_, live_, bins_=10, floor_=1e-4):
    """PSI by a float64 loop: quantile edges of the reference, counts by comparison, natural log."""
    ref_ = [float(x) for x in reference_]
    cur_ = [float(x) for x in live_]
    # the statement's edges exactly: quantiles of the float64 reference at linspace(0, 1, bins + 1)[1:-1]
    levels_ = np.linspace(0.0, 1.0, bins_ + 1)[1:-1]
    edges_ = sorted(set(float(e) for e in np.quantile(np.array(ref_, dtype=np.float64), levels_)))
    k_ = len(edges_) + 1

    def counts(values):
        c = [0] * k_
        for x in values:
            c[sum(1 for e in edges_ if x >= e)] += 1
        return c

    total = 0.0
    for cr, cl in zip(counts(ref_), counts(cur_), strict=True):
        r_, l_ = max(cr / len(ref_), floor_), max(cl / len(cur_), floor_)
        total += (l_ - r_) * math.log(l_ / r_)
    return total


def _psi(reference_, live_, **kwargs):
    before = [np.array(reference_, copy=True), np.array(live_, copy=True)]
    result = call_without(psi, reference_, live_, forbidden=_forbidden_psi, **kwargs)
    assert np.array_equal(np.asarray(reference_), before[0]) and np.array_equal(np.asarray(live_), before[1]), (
        "psi must not modify its inputs"
    )
    assert type(result) is float, f"psi should return a Python float, got {type(result).__name__}"
    return result


_rng = np.random.default_rng(grading_seed("test-psi", 7))
_cases = {
    "normal vs the same normal": (_rng.normal(0, 1, 2000), _rng.normal(0, 1, 800), {}),
    "normal vs a shifted normal": (_rng.normal(0, 1, 2000), _rng.normal(0.4, 1, 800), {}),
    "normal vs a wider normal, 5 bins": (_rng.normal(0, 1, 1500), _rng.normal(0, 2, 600), {"bins": 5}),
    "log-normal vs a shifted log-normal, 20 bins": (
        _rng.lognormal(3, 0.8, 3000),
        _rng.lognormal(3.3, 0.8, 500),
        {"bins": 20},
    ),
    "exponential, floor 1e-3": (_rng.exponential(1, 1000), _rng.exponential(1.6, 400), {"floor": 1e-3}),
    "counts with ties (edges merged, values on edges)": (
        _rng.poisson(3, 2000).astype(float),
        _rng.poisson(4, 700).astype(float),
        {},
    ),
    "live far above the reference (all in the last bin)": (_rng.normal(0, 1, 1000), _rng.normal(10, 1, 300), {}),
    "live below the reference, with empty bins": (_rng.uniform(0, 1, 1000), _rng.uniform(-1, 0.05, 300), {}),
    "small windows of different lengths": (_rng.normal(0, 1, 37), _rng.normal(0.5, 1, 11), {"bins": 4}),
}
for _name, (_ref, _live, _kw) in _cases.items():
    _want = _psi_reference(_ref, _live, _kw.get("bins", 10), _kw.get("floor", 1e-4))
    assert_close(_psi(_ref, _live, **_kw), _want, rtol=1e-9, atol=1e-12, msg=f"PSI, {_name}")

# An empty live bin gives a large but finite PSI.
_big = _psi(_rng.normal(0, 1, 1000), np.full(200, 5.0))
assert math.isfinite(_big) and _big > 5, f"PSI with every live value in one bin should be large and finite, got {_big}"
# Lists work; identical windows give 0.
_list = [float(x) for x in _rng.normal(0, 1, 300)]
assert abs(_psi(_list, _list)) < 1e-12, "identical windows (lists) should have PSI 0"
assert_close(
    _psi(_list, _list[:150], bins=6), _psi_reference(_list, _list[:150], 6), rtol=1e-9, atol=1e-12, msg="lists"
)
# A constant reference: one edge, bin 0 empty in the reference.
_const = np.full(100, 5.0)
assert abs(_psi(_const, np.full(30, 5.0))) < 1e-12, "a constant reference and the same constant live: PSI 0"
_mixed = np.array([4.0] * 10 + [5.0] * 30 + [6.0] * 10)
assert_close(_psi(_const, _mixed), _psi_reference(_const, _mixed), rtol=1e-9, atol=1e-12, msg="a constant reference")

# Boundaries: bins = 2 (the smallest allowed), values exactly on the edges (they go to the bin
# above), floor alone and with bins, windows of one value, integers, float32 input (work in float64).
_on_edges_ref = np.arange(9.0)  # bins=4: edges exactly 2.0, 4.0 and 6.0 (reference values on them)
_f32_ref = np.array([1.0, 1.0 + 2.0**-23], dtype=np.float32)  # float64 edge 1 + 2**-24; in float32 it rounds to 1.0
_boundary_cases = {
    "bins=2, the smallest allowed": (_rng.normal(0, 1, 400), _rng.normal(0.3, 1.2, 150), {"bins": 2}),
    "live values exactly on the edges 2, 4, 6 (4 bins)": (
        _on_edges_ref,
        np.array([2.0, 2.0, 2.0, 4.0, 6.0, 6.0, 6.0, 6.0]),
        {"bins": 4},
    ),
    "live values just below the edges 2, 4, 6 (4 bins)": (
        _on_edges_ref,
        np.nextafter(np.array([2.0, 2.0, 2.0, 4.0, 6.0, 6.0, 6.0, 6.0]), -np.inf),
        {"bins": 4},
    ),
    "floor=0.05 with bins=3 (empty live bins)": (np.arange(30.0), np.full(12, 29.0), {"bins": 3, "floor": 0.05}),
    "floor=0.3, above every fraction of 5 bins": (np.arange(50.0), np.arange(0.0, 50.0, 3.0), {"bins": 5, "floor": 0.3}),
    "a one-value reference and a one-value live window": (np.array([2.0]), np.array([3.0]), {}),
    "integer lists": ([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5], [2, 7, 1, 8, 2, 8], {"bins": 3}),
    "a float32 reference (work in float64)": (_f32_ref, np.array([1.0, 1.0, 2.0], dtype=np.float32), {"bins": 2}),
    "values 1e-9 apart near 1 (distinct in float64, not in float32)": (
        1.0 + np.arange(20) * 1e-9,
        1.0 + np.array([0.0, 0.0, 0.0, 3.0, 19.0]) * 1e-9,
        {"bins": 5},
    ),
    "lists of Python ints, one beyond int64 (10**20)": ([1, 2, 3, 4, 10**20], [2, 3, 3, 10**20], {"bins": 2}),
    # linspace levels 0.30000000000000004, 0.6000000000000001, 0.7000000000000001 give the edges
    # 3.0000000000000004, 6.000000000000001, 7.000000000000001: the values 3, 6 and 7 fall below them.
    "reference 0..10, bins=10, values on the linspace edges": (
        np.arange(11.0),
        np.array([3.0, 3.0, 6.0, 7.0, 7.0, 10.0]),
        {},
    ),
}
for _name, (_ref, _live, _kw) in _boundary_cases.items():
    _want = _psi_reference(_ref, _live, _kw.get("bins", 10), _kw.get("floor", 1e-4))
    _shape = f"reference {np.shape(_ref)} {np.asarray(_ref).dtype}, live {np.shape(_live)} {np.asarray(_live).dtype}"
    assert_close(_psi(_ref, _live, **_kw), _want, rtol=1e-9, atol=1e-12, msg=f"PSI, {_name}: {_shape}, {_kw}")

# Bad input raises ValueError.
for _bad_ref, _bad_live, _bad_kw, _why in (
    ([], [1.0, 2.0], {}, "an empty reference"),
    ([1.0, 2.0, 3.0], [], {}, "an empty live window"),
    ([1.0, 2.0, 3.0], [1.0, float("nan")], {}, "NaN in the live window"),
    ([1.0, float("nan"), 3.0], [1.0, 2.0], {}, "NaN in the reference"),
    ([1.0, float("inf"), 3.0], [1.0, 2.0], {}, "an infinity in the reference"),
    ([1.0, 2.0, 3.0], [float("-inf"), 2.0], {}, "-inf in the live window"),
    ([1.0, 2.0, 3.0], [1.0, 2.0], {"bins": 1}, "bins=1"),
    ([1.0, 2.0, 3.0], [1.0, 2.0], {"bins": 0}, "bins=0"),
):
    try:
        psi(_bad_ref, _bad_live, **_bad_kw)
    except ValueError:
        pass
    else:
        raise AssertionError(f"psi with {_why} should raise ValueError (reference {_bad_ref}, live {_bad_live}, {_bad_kw})")
### END HIDDEN TESTS
print("psi: tests passed")


# %% [markdown] nbgrader={"grade": false, "grade_id": "task-latency", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Task 2 — Latency percentiles (2 points)
#
# A service that answers in 20 ms on average can still make one request in a hundred wait half
# a second, and those are the requests users remember. Latency is therefore reported as
# **percentiles** of the raw timings: the median (p50) for the typical request, p90 and p99 for
# the tail. A mean, or an average of per-minute percentiles, hides the tail.
#
# Write `latency_percentiles(seconds) -> dict[str, float]`:
#
# - `seconds` is a sequence (a list, a tuple or a 1-D NumPy array) of request latencies in
#   **seconds**, in the order they were measured (not sorted).
# - Return a dict with exactly the keys `"mean"`, `"p50"`, `"p90"` and `"p99"`, each a Python
#   `float` in **milliseconds**.
# - The `q`-th percentile uses **linear interpolation** between order statistics (NumPy's
#   default): sort the `n` values ascending, `x_0 <= ... <= x_{n-1}`; let `pos = (n - 1) q / 100`,
#   `lo = floor(pos)`, `hi = min(lo + 1, n - 1)`; the percentile is
#   `x_lo + (x_hi - x_lo) * (pos - lo)`. A single timing is its own mean and percentiles.
# - Write the interpolation yourself (sorting is fine): do not call any library function that
#   computes a quantile, a percentile or a median. That is `numpy.percentile`, `numpy.quantile`,
#   `numpy.median` (and their `nan` versions, and `numpy.ma.median`), `torch.quantile`,
#   `torch.median` (and their `nan` versions), `scipy.stats.scoreatpercentile`, `scipy.stats.quantile`,
#   `scipy.stats.iqr`, `scipy.stats.mstats.mquantiles`, `hdquantiles` and `scoreatpercentile`,
#   `scipy.ndimage.median` and `percentile_filter`, pandas' `quantile`, `median` and `describe`,
#   `statistics.quantiles` and the `statistics.median` functions, and the course package's
#   `percentile` and `summarize_latencies` (the hidden tests check this and compare with
#   `numpy.percentile`).
# - A latency of exactly 0 is valid. Raise `ValueError` for an empty sequence, and for a NaN or a
#   negative latency (naming the value in the message). Do not modify the input.


# %% nbgrader={"grade": false, "grade_id": "latency-answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def latency_percentiles(seconds) -> dict[str, float]:
    """Mean, p50, p90 and p99 of latencies given in seconds, in milliseconds (linear interpolation)."""
    ### BEGIN SOLUTION
    ms = [1000.0 * float(s) for s in seconds]
    if not ms:
        raise ValueError("no latencies to summarize")
    for value in ms:
        if math.isnan(value) or value < 0:
            raise ValueError(f"latencies must be >= 0 and not NaN, got {value / 1000.0}")
    ordered = sorted(ms)
    n = len(ordered)

    def percentile(q: float) -> float:
        pos = (n - 1) * q / 100.0
        lo = math.floor(pos)
        hi = min(lo + 1, n - 1)
        return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)

    return {"mean": math.fsum(ms) / n, "p50": percentile(50), "p90": percentile(90), "p99": percentile(99)}
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-latency", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
summary = latency_percentiles([0.040, 0.010, 0.100, 0.030, 0.020])
assert isinstance(summary, dict), f"latency_percentiles should return a dict, got {type(summary).__name__}"
assert set(summary) == {"mean", "p50", "p90", "p99"}, f"keys should be mean, p50, p90, p99, got {sorted(summary)}"
# Sorted: 10, 20, 30, 40, 100 ms. p90: pos 3.6 -> 40 + 0.6 * 60 = 76; p99: pos 3.96 -> 40 + 0.96 * 60 = 97.6.
for key, want in (("mean", 40.0), ("p50", 30.0), ("p90", 76.0), ("p99", 97.6)):
    assert_close(summary[key], want, rtol=1e-9, atol=1e-9, msg=f"{key} of 10, 20, 30, 40, 100 ms")
try:
    latency_percentiles([])
except ValueError:
    pass
else:
    raise AssertionError("latency_percentiles([]) should raise ValueError")
### BEGIN HIDDEN TESTS
# Every library function that computes a quantile, a percentile or a median (the statement's list).
_forbidden_latency = (
    "numpy.percentile",
    "numpy.quantile",
    "numpy.nanpercentile",
    "numpy.nanquantile",
    "numpy.median",
    "numpy.nanmedian",
    "numpy.ma.median",
    "torch.quantile",
    "torch.nanquantile",
    "torch.median",
    "torch.nanmedian",
    "scipy.stats.scoreatpercentile",
    "scipy.stats.mstats.mquantiles",
    "scipy.stats.mstats.hdquantiles",
    "scipy.stats.mstats.scoreatpercentile",
    "scipy.stats.quantile",
    "scipy.stats.iqr",
    "scipy.ndimage.median",
    "scipy.ndimage.percentile_filter",
    "pandas.Series.quantile",
    "pandas.DataFrame.quantile",
    "pandas.Series.median",
    "pandas.DataFrame.median",
    "pandas.Series.describe",
    "pandas.DataFrame.describe",
    "statistics.quantiles",
    "statistics.median",
    "statistics.median_low",
    "statistics.median_high",
    "statistics.median_grouped",
    "mlcraft.mlops.timing.percentile",
    "mlcraft.mlops.timing.summarize_latencies",
)


def _latency(seconds_):
    before = list(np.asarray(seconds_, dtype=np.float64)) if len(seconds_) else []
    result = call_without(latency_percentiles, seconds_, forbidden=_forbidden_latency)
    after = list(np.asarray(seconds_, dtype=np.float64)) if len(seconds_) else []
    assert before == after, "latency_percentiles must not modify its input"
    assert isinstance(result, dict) and set(result) == {"mean", "p50", "p90", "p99"}, (
        f"latency_percentiles should return a dict with keys mean, p50, p90, p99, got {result!r}"
    )
    assert all(type(v) is float for v in result.values()), f"every value should be a Python float, got {result!r}"
    return result


def _check_latency(seconds_, label):
    ms_ = 1000.0 * np.asarray(seconds_, dtype=np.float64)
    got = _latency(seconds_)
    assert_close(got["mean"], float(ms_.mean()), rtol=1e-9, atol=1e-9, msg=f"mean, {label}")
    for q in (50, 90, 99):
        assert_close(
            got[f"p{q}"], float(np.percentile(ms_, q)), rtol=1e-9, atol=1e-9, msg=f"p{q} against numpy, {label}"
        )


_rng = np.random.default_rng(grading_seed("test-latency", 11))
_check_latency(_rng.lognormal(-4, 0.6, 1000), "1000 log-normal timings (numpy array)")
_check_latency(list(_rng.lognormal(-4, 1.0, 237)), "237 heavy-tailed timings (list)")
_check_latency(tuple(_rng.exponential(0.02, 58)), "58 exponential timings (tuple)")
_check_latency(np.concatenate([np.full(95, 0.010), np.full(5, 0.500)]), "95 fast requests and 5 slow ones")
_check_latency([0.003, 0.001], "two timings")
_check_latency([0.25], "one timing")
# Boundaries: a latency of exactly 0 is allowed; positions that fall exactly on an order statistic
# (n = 11: p50 and p90; n = 101: all three); integer seconds; a float32 array.
_check_latency([0.0], "one timing of exactly 0 s")
_check_latency([0.0, 0.0, 0.004, 0.0, 0.001], "timings of exactly 0 s among others")
_check_latency(list(_rng.permutation(np.arange(11.0)) / 1000), "11 timings (p50, p90 on order statistics)")
_check_latency(_rng.permutation(np.arange(101.0)) / 1000 + 0.5, "101 timings (every position an order statistic)")
_check_latency([2, 0, 1, 3], "integer seconds (list of int)")
_check_latency(np.array([0.1, 0.0125, 0.5, 0.25], dtype=np.float32), "a float32 array")
_one = _latency([0.25])
assert all(abs(v - 250.0) < 1e-9 for v in _one.values()), f"a single 0.25 s timing is 250 ms everywhere, got {_one}"
for _bad, _why in (
    ([], "an empty list"),
    ((), "an empty tuple"),
    (np.array([]), "an empty array"),
    ([0.1, float("nan")], "a NaN timing"),
    ([float("nan"), 0.1, 0.2], "a NaN as the first timing"),
    ([0.1, -0.002], "a negative timing"),
    ([0.01, -(2.0**-14)], "a negative timing above -1 ms (-2**-14 s)"),
    ((0.3, -0.5, 0.1), "a negative timing in the middle (a tuple)"),
):
    try:
        latency_percentiles(_bad)
    except ValueError as _err:
        if len(_bad):
            _value = next(v for v in _bad if math.isnan(v) or v < 0)
            assert (
                str(_value) in str(_err)
                or f"{_value * 1000:g}" in str(_err)
                or (math.isnan(_value) and "nan" in str(_err).lower())
            ), f"the ValueError for {_why} ({list(_bad)}) should name the value, got: {_err}"
    else:
        raise AssertionError(f"latency_percentiles with {_why} ({_bad!r}) should raise ValueError")
### END HIDDEN TESTS
print("latency_percentiles: tests passed")


# %% [markdown] nbgrader={"grade": false, "grade_id": "task-schema", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Task 3 — A request schema that rejects bad input (3 points)
#
# A model server receives JSON from clients it does not control. A `NaN` in one feature turns
# into a `NaN` probability; a row with seven features where the model expects eight raises deep
# inside the model, or worse, is silently padded by some preprocessing; `"1.5"` as a string,
# `true` as a number, an extra field from a client on a newer API version: all of these should be
# answered with a clear 422 error **before** they reach the model. Web frameworks such as FastAPI
# do this with pydantic models: declare what a valid request is, and pydantic raises
# `pydantic.ValidationError` for anything else.
#
# Write two pydantic models (subclasses of `pydantic.BaseModel`):
#
# - `PredictRequest` with one field, `features`: a list of exactly `N_FEATURES` (8) numbers.
# - `BatchRequest` with one field, `instances`: a list of at least 1 and at most `MAX_BATCH`
#   (64) rows, each a list of exactly `N_FEATURES` numbers.
#
# A **number** is a Python `int` or `float` (or a JSON number) that is **finite** and within the
# `float32` range, `abs(x) <= FLOAT32_MAX` (the model computes in `float32`, where `1e39` would
# become an infinity). Accepted numbers are stored as Python `float`s. Reject:
#
# - `NaN`, `inf` and `-inf` (also when they come from JSON, such as `1e400`), and numbers
#   beyond the `float32` range;
# - strings, even `"1.5"`, and booleans (`True` is an `int` in Python, but not a feature):
#   validate in **strict** mode;
# - rows of the wrong length, an empty batch, a batch of more than `MAX_BATCH` rows, a bad
#   value in any row of a batch;
# - a missing field, and **extra fields** (`{"features": [...], "model": "v2"}`).
#
# Each rejection must raise `pydantic.ValidationError`, both for
# `PredictRequest.model_validate(payload)` (a Python dict) and for
# `PredictRequest.model_validate_json(text)` (a JSON string). `Field(strict=True,
# allow_inf_nan=False, ...)`, `Annotated`, `ConfigDict(extra="forbid")`, `min_length`,
# `max_length` and validators are all available; write the models yourself rather than
# subclassing or reusing the course package's `mlcraft.mlops.serving` models.


# %% nbgrader={"grade": false, "grade_id": "schema-answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
# Helpers (a number type, a row type, validators) go here, if you want any.
### BEGIN SOLUTION
def _within_float32_range(value: float) -> float:
    if abs(value) > FLOAT32_MAX:
        raise ValueError(f"{value:g} is outside the float32 range, which ends at {FLOAT32_MAX:.3g}")
    return value


Number = Annotated[float, Field(strict=True, allow_inf_nan=False), AfterValidator(_within_float32_range)]
Row = Annotated[list[Number], Field(min_length=N_FEATURES, max_length=N_FEATURES)]
### END SOLUTION


class PredictRequest(BaseModel):
    """One row: ``{"features": [x_1, ..., x_N_FEATURES]}``."""

    ### BEGIN SOLUTION
    model_config = ConfigDict(extra="forbid")
    features: Row
    ### END SOLUTION


class BatchRequest(BaseModel):
    """1 to ``MAX_BATCH`` rows: ``{"instances": [[...], ...]}``."""

    ### BEGIN SOLUTION
    model_config = ConfigDict(extra="forbid")
    instances: list[Row] = Field(min_length=1, max_length=MAX_BATCH)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-schema", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
@in_kernel
def validate_request(schema, payload, how="model_validate"):
    """Your ``schema`` ("PredictRequest" or "BatchRequest") validates ``payload``, a dict with
    ``how="model_validate"`` or a JSON string with ``how="model_validate_json"``. Returns
    ``("rejected", message)`` when it raises ValidationError, else ``("accepted", fields)``."""
    cls = {"PredictRequest": PredictRequest, "BatchRequest": BatchRequest}[schema]
    try:
        obj = cls.model_validate_json(payload) if how == "model_validate_json" else cls.model_validate(payload)
    except ValidationError as err:
        return "rejected", str(err)
    return "accepted", dict(obj)


good_row = [1.0, -2.5, 0.0, 3, 1e-3, 40.0, 7.0, -0.25]
outcome, request = validate_request("PredictRequest", {"features": good_row})
assert outcome == "accepted", f"PredictRequest should accept a row of 8 numbers, got: {request}"
assert request.get("features") == [float(x) for x in good_row], (
    f"features should be kept as floats, got {request.get('features')}"
)
assert all(type(x) is float for x in request["features"]), "accepted numbers should be stored as Python floats"
outcome, batch = validate_request("BatchRequest", {"instances": [good_row, good_row]})
assert outcome == "accepted" and len(batch.get("instances", [])) == 2, (
    f"a batch of two good rows should be accepted, got: {batch}"
)
for bad_payload, why in (
    ({"features": [*good_row[:-1], float("nan")]}, "a NaN feature"),
    ({"features": good_row[:-1]}, "7 features instead of 8"),
):
    outcome, _ = validate_request("PredictRequest", bad_payload)
    assert outcome == "rejected", f"PredictRequest should reject {why}"
### BEGIN HIDDEN TESTS
import json


@in_kernel
def _schema_classes():
    """The classes each schema derives from, as (module, qualified name) pairs."""
    classes = {"PredictRequest": PredictRequest, "BatchRequest": BatchRequest}
    return {name: [(c.__module__, c.__qualname__) for c in cls.__mro__] for name, cls in classes.items()}


for _cls_name, _mro in _schema_classes().items():
    assert ("pydantic.main", "BaseModel") in _mro, f"{_cls_name} should be a pydantic BaseModel, derives from {_mro}"
    assert not any(_module.startswith("mlcraft") for _module, _ in _mro), (
        f"{_cls_name} should be written here, not derived from the course package's models"
    )
_forbidden_schema = ("mlcraft.mlops.serving._within_float32",)


def _accepts(schema, payload, label):
    for how, arg in (("model_validate", payload), ("model_validate_json", json.dumps(payload))):
        outcome, fields = call_without(validate_request, schema, arg, how, forbidden=_forbidden_schema)
        assert outcome == "accepted", f"{schema}.{how} should accept {label}, got: {fields}"
    return fields


def _rejects(schema, payload, label):
    for how, arg in (
        ("model_validate", payload),
        ("model_validate_json", json.dumps(payload)),  # NaN, Infinity: JSON5 tokens
    ):
        outcome, _ = call_without(validate_request, schema, arg, how, forbidden=_forbidden_schema)
        assert outcome == "rejected", f"{schema}.{how} should raise ValidationError for {label}"


_row = [0.5 * i - 1 for i in range(N_FEATURES)]
_ints = [1, 2, 3, 4, 5, 6, 7, 8]
_ok = _accepts("PredictRequest", {"features": _ints}, "integer features")
assert _ok.get("features") == [float(x) for x in _ints] and all(type(x) is float for x in _ok["features"]), (
    f"integer features should be stored as floats, got {_ok.get('features')}"
)
_accepts("PredictRequest", {"features": [FLOAT32_MAX, -FLOAT32_MAX, *_row[2:]]}, "the float32 extremes")
_accepts("PredictRequest", {"features": [1e-300, 0.0, -0.0, *_row[3:]]}, "tiny numbers and zeros")
# Exactly at the top of the range as an int (stored as the float FLOAT32_MAX); one float above it is out.
_top = _accepts("PredictRequest", {"features": [int(FLOAT32_MAX), -int(FLOAT32_MAX), *_row[2:]]}, "int(FLOAT32_MAX)")
assert _top.get("features", [None])[:2] == [FLOAT32_MAX, -FLOAT32_MAX] and type(_top["features"][0]) is float, (
    f"int(FLOAT32_MAX) should be stored as the float FLOAT32_MAX, got {_top.get('features', [None])[:2]}"
)

_bad_values = {
    "NaN": float("nan"),
    "inf": float("inf"),
    "-inf": float("-inf"),
    "1e39 (beyond float32)": 1e39,
    "-1e39 (beyond float32)": -1e39,
    "the float just above FLOAT32_MAX": math.nextafter(FLOAT32_MAX, math.inf),
    "the float just below -FLOAT32_MAX": math.nextafter(-FLOAT32_MAX, -math.inf),
    "the int 10**39 (beyond float32)": 10**39,
    "the boolean False": False,
    'the string "1.5"': "1.5",
    "the boolean True": True,
    "None": None,
    "a nested list": [1.0],
}
for _label, _value in _bad_values.items():
    _rejects("PredictRequest", {"features": [*_row[:3], _value, *_row[4:]]}, f"a feature {_label}")
for _text, _label in (
    ('{"features": [1, 2, 3, 1e400, 5, 6, 7, 8]}', "1e400 in JSON (an infinity)"),
    ('{"features": [1, 2, 3, NaN, 5, 6, 7, 8]}', "NaN in JSON"),
    ('{"features": [1, 2, 3, "4", 5, 6, 7, 8]}', 'the string "4" in JSON'),
    ('{"features": [1, 2, 3, true, 5, 6, 7, 8]}', "true in JSON"),
    ('{"features": [1, 2, 3, -1e400, 5, 6, 7, 8]}', "-1e400 in JSON (-inf)"),
    ('{"features": [1, 2, 3, 4, 5, 6, 7, 8], "features_2": null}', "an extra null field in JSON"),
):
    _outcome, _ = validate_request("PredictRequest", _text, "model_validate_json")
    assert _outcome == "rejected", f"PredictRequest.model_validate_json should reject {_label}"

for _payload, _label in (
    ({"features": _row[:-1]}, "7 features"),
    ({"features": [*_row, 1.0]}, "9 features"),
    ({"features": []}, "no features"),
    ({}, "a missing features field"),
    ({"features": _row, "model": "v2"}, "an extra field"),
    ({"instances": [_row]}, "a batch sent to the single-row schema"),
    ({"features": 3.0}, "a number instead of a list"),
):
    _rejects("PredictRequest", _payload, _label)

# Batches.
_one_row = _accepts("BatchRequest", {"instances": [_ints]}, "a batch of one row of ints")
assert _one_row.get("instances") == [[float(x) for x in _ints]] and all(
    type(x) is float for x in _one_row["instances"][0]
), f"a batch's integer features should be stored as floats, got {_one_row.get('instances')}"
_edge_rows = [[FLOAT32_MAX, -FLOAT32_MAX, 0.0, -0.0, 1e-300, *_row[5:]], _row]
_accepts("BatchRequest", {"instances": _edge_rows}, "rows with the float32 extremes and zeros")
_full = _accepts("BatchRequest", {"instances": [_row] * MAX_BATCH}, f"a batch of exactly MAX_BATCH = {MAX_BATCH} rows")
_full_rows = _full.get("instances", [])
assert len(_full_rows) == MAX_BATCH and all(type(x) is float for r in _full_rows for x in r), (
    "a full batch should keep every row, as floats"
)
for _payload, _label in (
    ({"instances": []}, "an empty batch"),
    ({"instances": [_row] * (MAX_BATCH + 1)}, f"a batch of MAX_BATCH + 1 = {MAX_BATCH + 1} rows"),
    ({"instances": [_row, _row[:-1]]}, "a batch with a short row"),
    ({"instances": [_row, [*_row, 0.0]]}, "a batch with a long row"),
    ({"instances": [_row, [*_row[:-1], "2"]]}, "a batch with a string in a row"),
    ({"instances": [_row, [*_row[:-1], 1e39]]}, "a batch with a value beyond float32"),
    ({"instances": [_row, [*_row[:-1], -float("inf")]]}, "a batch with -inf in a row"),
    ({"instances": [[True, *_row[1:]], _row]}, "a batch with a boolean in the first row"),
    ({"instances": [_row] * (2 * MAX_BATCH)}, f"a batch of 2 * MAX_BATCH = {2 * MAX_BATCH} rows"),
    ({"instances": [_row, []]}, "a batch with an empty row"),
    ({"instances": [_row], "priority": 1}, "an extra field"),
    ({}, "a missing instances field"),
    ({"instances": _row}, "a single row instead of a list of rows"),
):
    _rejects("BatchRequest", _payload, _label)
_outcome, _ = validate_request("BatchRequest", {"instances": [_row, [*_row[:-1], float("nan")]]})
assert _outcome == "rejected", "BatchRequest should reject a NaN in its second row"
_outcome, _ = validate_request(
    "BatchRequest",
    '{"instances": [[1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 3, 4, 5, 6, 7, Infinity]]}',
    "model_validate_json",
)
assert _outcome == "rejected", "BatchRequest.model_validate_json should reject Infinity in a row"
### END HIDDEN TESTS
print("PredictRequest and BatchRequest: tests passed")


# %% [markdown] nbgrader={"grade": false, "grade_id": "task-parity", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Task 4 — ONNX parity (3 points)
#
# A model is often served by a different runtime than the one it was trained in: exported to
# ONNX and run by onnxruntime, which is faster on CPUs and needs no PyTorch. Export can go wrong
# quietly: an operator exported with a different default, a batch axis frozen to the size of the
# example used for the export, a graph that mixes rows of a batch. The exported model then agrees
# with the trained one on the example you tried and disagrees elsewhere. Before an exported
# model is served, check it against the eager model **on every row of a held-out set and at
# more than one batch size**.
#
# Write `check_parity(model, onnx_path, inputs, atol=1e-5) -> float`:
#
# - `model` is a PyTorch module (on any device), `onnx_path` the path of its exported graph,
#   `inputs` a `float32` tensor `(N, F)` with `N >= 1`, on the model's device.
# - Put the model in **eval mode** (`model.eval()`: dropout off; leave it in eval mode) and
#   compute its outputs for all `N` rows in one call, without gradients.
# - Run the ONNX graph with `onnxruntime.InferenceSession(str(onnx_path),
#   providers=["CPUExecutionProvider"])` on the same rows as a NumPy `float32` array (tensors on
#   a GPU must come to the CPU first). Read the input's name from `session.get_inputs()[0].name`:
#   graphs name it differently. Run it **at two batch sizes**: each row alone (`N` runs of one
#   row, shape `(1, F)`) and all `N` rows in one run.
# - The error is the largest absolute difference between the eager outputs and the ONNX outputs,
#   over every row, every output and both batch sizes. Return it as a Python `float` if it is at
#   most `atol`; otherwise raise `AssertionError` with the error in the message.
# - Errors from onnxruntime itself (for example a graph whose batch axis was fixed at export and
#   rejects a batch of another size) are not caught: they reach the caller.
# - Raise `ValueError` if `inputs` is not two-dimensional or has no rows. Do not modify `inputs`.
#
# The hidden tests build faulty graphs with `mlp_to_onnx(..., tamper=...)` (see the imports
# cell): graphs that are wrong only on some rows, only at batch size 1, or only in batches of
# several rows, and a graph with a fixed batch axis. They compute the expected error with
# onnxruntime directly. Do not call the course package's `check_onnx_parity`.


# %% nbgrader={"grade": false, "grade_id": "parity-answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def check_parity(model: nn.Module, onnx_path, inputs: torch.Tensor, atol: float = 1e-5) -> float:
    """Largest |eager - onnxruntime| over every row, at batch size 1 and N; AssertionError above ``atol``."""
    ### BEGIN SOLUTION
    if inputs.dim() != 2 or inputs.shape[0] == 0:
        raise ValueError(f"inputs must be (N >= 1, F), got shape {tuple(inputs.shape)}")
    model.eval()
    with torch.no_grad():
        eager = model(inputs).detach().cpu().double().numpy()  # (N, C)
    x = np.ascontiguousarray(inputs.detach().cpu().numpy(), dtype=np.float32)  # (N, F)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    one_by_one = np.concatenate([session.run(None, {name: x[i : i + 1]})[0] for i in range(x.shape[0])])  # (N, C)
    all_at_once = session.run(None, {name: x})[0]  # (N, C)
    error = max(
        float(np.abs(one_by_one.astype(np.float64) - eager).max()),
        float(np.abs(all_at_once.astype(np.float64) - eager).max()),
    )
    if error > atol:
        raise AssertionError(f"ONNX parity failed: max |eager - onnxruntime| = {error:.3e} > atol {atol:.1e}")
    return error
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-parity", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def mlp_as_data(model):
    """An ``nn.Sequential`` of Linear, ReLU and Dropout layers as data: (layers, weights, training)."""
    layers = []
    for layer in model:
        if isinstance(layer, nn.Linear):
            layers.append(("Linear", layer.in_features, layer.out_features))
        elif isinstance(layer, nn.ReLU):
            layers.append(("ReLU",))
        elif isinstance(layer, nn.Dropout):
            layers.append(("Dropout", layer.p))
        else:
            raise ValueError(f"mlp_as_data handles Linear, ReLU and Dropout, not {type(layer).__name__}")
    weights = {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}
    return layers, weights, model.training


def mlp_from_data(layers, weights, training):
    """The model ``mlp_as_data`` described, on the CPU."""
    kinds = {"Linear": nn.Linear, "ReLU": nn.ReLU, "Dropout": nn.Dropout}
    model = nn.Sequential(*[kinds[kind](*args) for kind, *args in layers])
    model.load_state_dict(weights)
    return model.train(training)


@in_kernel
def run_check_parity(model_data, onnx_bytes, inputs, **kwargs):
    """Rebuilds the model (``mlp_as_data``) on the device of ``inputs`` and writes the ONNX file
    (its bytes) in a temporary folder; then your ``check_parity(model, path, inputs, **kwargs)``.
    Returns what it returned (``"returned"``) or the message of the AssertionError it raised
    (``"raised"``), and whether the model is in training mode afterwards (``"training"``)."""
    model = mlp_from_data(*model_data).to(inputs.device)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.onnx"
        path.write_bytes(onnx_bytes)
        try:
            return {"returned": check_parity(model, path, inputs, **kwargs), "training": model.training}
        except AssertionError as err:
            return {"raised": str(err), "training": model.training}


torch.manual_seed(0)
parity_model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 3)).to(DEVICE)
parity_inputs = torch.randn(12, 8, device=DEVICE)
parity_dir = tempfile.TemporaryDirectory()
good_path = mlp_to_onnx(parity_model, Path(parity_dir.name) / "good.onnx")
result = run_check_parity(mlp_as_data(parity_model), good_path.read_bytes(), parity_inputs)
assert "returned" in result, f"a faithful export should pass, got AssertionError: {result.get('raised')}"
error = result["returned"]
assert isinstance(error, float), f"check_parity should return a Python float, got {type(error).__name__}"
assert 0.0 <= error <= 1e-5, f"a faithful export should pass with a tiny error, got {error}"
assert not result["training"], "check_parity should leave the model in eval mode"


# A graph that adds 0.01 to every output: the check must fail.
def shift_all(nodes, initializers, logits, input_name):
    initializers.append(numpy_helper.from_array(np.full(3, 0.01, dtype=np.float32), "shift"))
    nodes.append(helper.make_node("Add", [logits, "shift"], ["shifted"]))
    return "shifted"


bad_path = mlp_to_onnx(parity_model, Path(parity_dir.name) / "shifted.onnx", tamper=shift_all)
result = run_check_parity(mlp_as_data(parity_model), bad_path.read_bytes(), parity_inputs)
assert "raised" in result, "check_parity should raise AssertionError when every output is off by 0.01"
numbers = [float(v) for v in re.findall(r"\d+\.?\d*(?:[eE][-+]?\d+)?", result["raised"])]
assert any(abs(v - 0.01) < 1e-3 for v in numbers), (
    f"the AssertionError should give the error (0.01), got: {result['raised']}"
)
### BEGIN HIDDEN TESTS
_forbidden_parity = ("mlcraft.mlops.export.check_onnx_parity",)
_root = Path(parity_dir.name)


def _oracle_error(model_, path_, inputs_):
    """Largest error at batch sizes 1 and N, with onnxruntime and the eval-mode model run here."""
    model_.eval()
    with torch.no_grad():
        eager_ = model_(inputs_).cpu().double().numpy()
    x_ = inputs_.cpu().numpy().astype(np.float32)
    session_ = ort.InferenceSession(str(path_), providers=["CPUExecutionProvider"])
    name_ = session_.get_inputs()[0].name
    single = np.concatenate([session_.run(None, {name_: x_[i : i + 1]})[0] for i in range(len(x_))])
    whole = session_.run(None, {name_: x_})[0]
    return max(float(np.abs(single - eager_).max()), float(np.abs(whole - eager_).max()))


def _parity(model_, path_, inputs_, **kwargs):
    """(value returned or None, AssertionError message or None, training mode afterwards)."""
    before = inputs_.clone()
    try:
        result_ = call_without(
            run_check_parity,
            mlp_as_data(model_),
            Path(path_).read_bytes(),
            inputs_,
            forbidden=_forbidden_parity,
            **kwargs,
        )
        return result_.get("returned"), result_.get("raised"), result_["training"]
    finally:
        assert torch.equal(inputs_, before), "check_parity must not modify inputs"


torch.manual_seed(1)
_model = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 4))
_model = _model.to(DEVICE).train()  # in training mode: check_parity must switch dropout off
_x = torch.randn(20, 6, device=DEVICE)
_x[:5, 0] = _x[:5, 0].clamp(max=2.5)  # rows 0-4: feature 0 below 3
_x[5:, 0] = torch.linspace(3.5, 5.0, 15, device=DEVICE)  # rows 5-19: feature 0 above 3

# A faithful export with a differently named input, from a model left in training mode.
_good = mlp_to_onnx(_model, _root / "h_good.onnx", input_name="x")
_model.train()
_value, _err, _training = _parity(_model, _good, _x)
assert _err is None, f"a faithful export should pass (is dropout switched off?), got: {_err}"
assert type(_value) is float, f"check_parity should return a Python float, got {type(_value).__name__}"
assert not _training, "check_parity should put the model in eval mode"
assert_close(_value, _oracle_error(_model, _good, _x), rtol=0, atol=2e-6, msg="error of a faithful export")
_value_tol, _, _ = _parity(_model, _good, _x, atol=1e-4)
assert _value_tol is not None and _value_tol <= 1e-4, "a faithful export should also pass with atol=1e-4"


def _rows_above_3(nodes, initializers, logits, input_name):
    """Adds 1e-3 * relu(x[:, 0] - 3) to every output: wrong only on rows whose feature 0 exceeds 3."""
    selector = np.zeros((6, 1), dtype=np.float32)
    selector[0, 0] = 1.0
    initializers += [
        numpy_helper.from_array(selector, "sel"),
        numpy_helper.from_array(np.array([3.0], dtype=np.float32), "three"),
        numpy_helper.from_array(np.full((1, 4), 1e-3, dtype=np.float32), "scale"),
    ]
    nodes += [
        helper.make_node("MatMul", [input_name, "sel"], ["x0"]),  # (B, 1)
        helper.make_node("Sub", ["x0", "three"], ["x0m3"]),
        helper.make_node("Relu", ["x0m3"], ["over"]),
        helper.make_node("Mul", ["over", "scale"], ["bump"]),  # (B, 4)
        helper.make_node("Add", [logits, "bump"], ["bumped"]),
    ]
    return "bumped"


def _only_batch_of_one(nodes, initializers, logits, input_name):
    """Adds 2e-3 to every output when the batch has exactly one row."""
    initializers += [
        numpy_helper.from_array(np.array([0], dtype=np.int64), "zero_idx"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "one_i64"),
        numpy_helper.from_array(np.full(4, 2e-3, dtype=np.float32), "delta1"),
    ]
    nodes += [
        helper.make_node("Shape", [input_name], ["shape"]),
        helper.make_node("Gather", ["shape", "zero_idx"], ["batch"]),
        helper.make_node("Equal", ["batch", "one_i64"], ["is_one"]),
        helper.make_node("Cast", ["is_one"], ["is_one_f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["is_one_f", "delta1"], ["offset1"]),  # (4,)
        helper.make_node("Add", [logits, "offset1"], ["offset_logits1"]),
    ]
    return "offset_logits1"


def _mixes_rows(nodes, initializers, logits, input_name):
    """Adds 1e-3 * (x - batch mean of x) @ P: zero for a batch of one row, wrong for larger batches."""
    mix = np.random.default_rng(5).normal(0, 1, (6, 4)).astype(np.float32) * 1e-3
    initializers.append(numpy_helper.from_array(mix, "mix"))
    nodes += [
        helper.make_node("ReduceMean", [input_name], ["batch_mean"], axes=[0], keepdims=1),
        helper.make_node("Sub", [input_name, "batch_mean"], ["centred"]),
        helper.make_node("MatMul", ["centred", "mix"], ["leak"]),
        helper.make_node("Add", [logits, "leak"], ["leaky"]),
    ]
    return "leaky"


for _tamper, _label in (
    (_rows_above_3, "wrong only on rows 5 and later"),
    (_only_batch_of_one, "wrong only at batch size 1"),
    (_mixes_rows, "wrong only in batches of several rows"),
):
    _path = mlp_to_onnx(_model, _root / f"h_{_tamper.__name__}.onnx", input_name="input_0", tamper=_tamper)
    _want = _oracle_error(_model, _path, _x)
    assert _want > 1e-4, f"test set-up: the faulty graph ({_label}) should be off by more than 1e-4, got {_want}"
    _value, _err, _ = _parity(_model, _path, _x)
    assert _err is not None, f"check_parity should raise AssertionError for a graph {_label} (error {_want:.2e})"
    _value, _err, _ = _parity(_model, _path, _x, atol=1.0)
    assert _err is None, f"with atol=1.0 the graph {_label} should pass, got: {_err}"
    assert type(_value) is float, f"check_parity should return a Python float, got {type(_value).__name__} ({_label})"
    assert_close(_value, _want, rtol=1e-4, atol=2e-6, msg=f"returned error for a graph {_label}")

def _signed_offsets(when):
    """Subtracts 5e-4 from every output, and 1e-3 * relu(x[:, 0] - 3) more at batch size 1
    (``when="one"``) or in batches of several rows (``when="many"``): errors of one sign (the
    ONNX outputs are below the eager ones) that differ between the batch sizes and between rows."""

    def tamper(nodes, initializers, logits, input_name):
        selector = np.zeros((6, 1), dtype=np.float32)
        selector[0, 0] = 1.0
        initializers += [
            numpy_helper.from_array(selector, "t_sel"),
            numpy_helper.from_array(np.array([3.0], dtype=np.float32), "t_three"),
            numpy_helper.from_array(np.array([0], dtype=np.int64), "t_zero_idx"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "t_one_i64"),
            numpy_helper.from_array(np.array([1.0], dtype=np.float32), "t_one_f"),
            numpy_helper.from_array(np.full((1, 4), -1e-3, dtype=np.float32), "t_scale"),
            numpy_helper.from_array(np.full(4, -5e-4, dtype=np.float32), "t_const"),
        ]
        nodes += [
            helper.make_node("MatMul", [input_name, "t_sel"], ["t_x0"]),  # (B, 1)
            helper.make_node("Sub", ["t_x0", "t_three"], ["t_x0m3"]),
            helper.make_node("Relu", ["t_x0m3"], ["t_over"]),
            helper.make_node("Shape", [input_name], ["t_shape"]),
            helper.make_node("Gather", ["t_shape", "t_zero_idx"], ["t_batch"]),
            helper.make_node("Equal", ["t_batch", "t_one_i64"], ["t_is_one"]),
            helper.make_node("Cast", ["t_is_one"], ["t_is_one_f"], to=TensorProto.FLOAT),
        ]
        factor = "t_is_one_f"
        if when == "many":
            nodes.append(helper.make_node("Sub", ["t_one_f", "t_is_one_f"], ["t_is_many_f"]))
            factor = "t_is_many_f"
        nodes += [
            helper.make_node("Mul", ["t_over", factor], ["t_gated"]),  # (B, 1)
            helper.make_node("Mul", ["t_gated", "t_scale"], ["t_bump"]),  # (B, 4)
            helper.make_node("Add", ["t_bump", "t_const"], ["t_offset"]),
            helper.make_node("Add", [logits, "t_offset"], ["t_out"]),
        ]
        return "t_out"

    tamper.__name__ = f"_signed_offsets_{when}"
    return tamper


for _when, _label in (("one", "below eager, more at batch size 1"), ("many", "below eager, more in full batches")):
    _tamper = _signed_offsets(_when)
    _path = mlp_to_onnx(_model, _root / f"h_{_tamper.__name__}.onnx", input_name="features", tamper=_tamper)
    _want = _oracle_error(_model, _path, _x)
    assert 2e-3 < _want < 3e-3, f"test set-up: the graph {_label} should be off by about 2.5e-3, got {_want}"
    _value, _err, _ = _parity(_model, _path, _x)
    assert _err is not None, f"check_parity should raise AssertionError for a graph {_label} (error {_want:.2e})"
    _value, _err, _ = _parity(_model, _path, _x, atol=1.0)
    assert _err is None, f"with atol=1.0 the graph {_label} should pass, got: {_err}"
    assert_close(_value, _want, rtol=1e-4, atol=2e-6, msg=f"returned error for a graph {_label}, inputs {tuple(_x.shape)}")

# An error exactly equal to atol passes ("at most atol"); one ulp less fails. The error is the one
# your check_parity returned for this graph above (with atol=1.0).
_path = _root / "h__rows_above_3.onnx"
_own_error, _, _ = _parity(_model, _path, _x, atol=1.0)
_value, _err, _ = _parity(_model, _path, _x, atol=_own_error)
assert _err is None and _value == _own_error, (
    f"an error equal to atol ({_own_error!r}) should pass and be returned, got {_value!r}, {_err}"
)
_below = math.nextafter(_own_error, 0.0)
assert _parity(_model, _path, _x, atol=_below)[1] is not None, (
    f"an error of {_own_error!r} with atol one ulp smaller ({_below!r}) should raise AssertionError"
)


@in_kernel
def _parity_forward_calls(model_data, onnx_bytes, inputs):
    """Runs your check_parity on the rebuilt model with a forward hook: for each call of the
    model, whether gradients were on, whether it was in training mode, and the input's shape."""
    model = mlp_from_data(*model_data).to(inputs.device)
    calls = []
    model.register_forward_hook(
        lambda module, args, output: calls.append((torch.is_grad_enabled(), module.training, tuple(args[0].shape)))
    )
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.onnx"
        path.write_bytes(onnx_bytes)
        check_parity(model, path, inputs)
    return calls


_calls = _parity_forward_calls(mlp_as_data(_model), _good.read_bytes(), _x)
assert _calls, "check_parity should run the model"
assert not any(_grad for _grad, _, _ in _calls), f"the model should run without gradients: {_calls}"
assert not any(_train for _, _train, _ in _calls), f"the model should run in eval mode: {_calls}"
assert tuple(_x.shape) in [_shape for _, _, _shape in _calls], (
    f"the model should compute all {len(_x)} rows in one call, its calls saw shapes {[c[2] for c in _calls]}"
)

# The rows-above-3 graph is right on row 0: checking the first example only is not enough.
_row_path = _root / "h__rows_above_3.onnx"
assert _parity(_model, _row_path, _x[:5])[1] is None, "rows 0-4 of the rows-above-3 graph agree: should pass"

# A graph whose batch axis was fixed to 20 rows: onnxruntime rejects a batch of one row.
_fixed = mlp_to_onnx(_model, _root / "h_fixed.onnx", batch_size=20)
try:
    _result = run_check_parity(mlp_as_data(_model), _fixed.read_bytes(), _x)
except Exception:  # onnxruntime's own error type
    pass
else:
    assert "raised" in _result, (
        "a graph with its batch axis fixed to 20 must fail at batch size 1 (it was not run there)"
    )

# One row works (both batch sizes are 1), and bad shapes raise ValueError.
_value, _err, _ = _parity(_model, _good, _x[3:4])
assert _err is None and _value <= 1e-5, f"a single row of a faithful export should pass, got {_value}, {_err}"
for _bad_x, _why in ((_x[0], "a 1-D input"), (_x[:0], "no rows")):
    try:
        run_check_parity(mlp_as_data(_model), _good.read_bytes(), _bad_x)
    except ValueError:
        pass
    else:
        raise AssertionError(f"check_parity with {_why} should raise ValueError")
parity_dir.cleanup()
### END HIDDEN TESTS
print("check_parity: tests passed")


# %% [markdown] nbgrader={"grade": false, "grade_id": "task-tracking", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Task 5 — Log a run and read it back (3 points)
#
# Three months after a model was deployed, someone asks which learning rate it was trained
# with, and whether its validation loss was still falling. An **experiment tracker** answers:
# each training run records its settings (params) and its metrics at every step. MLflow stores
# them in a backend store; here a SQLite file, `sqlite:///<folder>/mlflow.db`, that the test
# creates in a temporary folder.
#
# Write two functions with `mlflow` (imported in the first cell) or `mlflow.MlflowClient`:
#
# `log_run(tracking_uri, experiment, params, metrics) -> str`
#
# - Creates the experiment named `experiment` in the store at `tracking_uri` if it does not
#   exist yet, and reuses it if it does (a second call with the same name adds a run to the same
#   experiment).
# - Starts one new run in it and logs every entry of `params` (a dict of names to numbers or
#   strings; MLflow stores each value as a string, `0.001` as `"0.001"`).
# - `metrics` maps a metric name to a list of `(step, value)` pairs. Log **every** pair, at
#   **its step** (not just the last value, and not every value at step 0). The pairs may come in
#   any order of steps; no step repeats within a metric. `params` or `metrics` may be empty.
# - Ends the run, so that its status is `"FINISHED"`, and returns its run id.
#
# `read_run(tracking_uri, run_id) -> tuple[dict[str, str], dict[str, list[tuple[int, float]]]]`
#
# - Returns the run's params (names to string values) and, for each metric of the run, its
#   **full history** as `(step, value)` pairs sorted by step, steps as `int`, values as `float`.
#   (A run's `data.metrics` holds only the latest value of each metric; the history comes from
#   `MlflowClient.get_metric_history`.)
#
# Both take the store's URI as an argument: do not rely on a URI set elsewhere. The hidden tests
# read your runs back with `MlflowClient`, and check your `read_run` on runs that they log
# themselves (with steps logged out of order). Do not call the course package's `setup_tracking`
# or `metric_history`.


# %% nbgrader={"grade": false, "grade_id": "tracking-answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def log_run(tracking_uri: str, experiment: str, params: dict, metrics: dict) -> str:
    """Log one finished run with ``params`` and every ``(step, value)`` of ``metrics``; return its id."""
    ### BEGIN SOLUTION
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found is not None else client.create_experiment(experiment)
    run_id = client.create_run(experiment_id).info.run_id
    for key, value in params.items():
        client.log_param(run_id, key, value)
    for key, history in metrics.items():
        for step, value in history:
            client.log_metric(run_id, key, float(value), step=int(step))
    client.set_terminated(run_id, status="FINISHED")
    return run_id
    ### END SOLUTION


# %% nbgrader={"grade": false, "grade_id": "read-run-answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def read_run(tracking_uri: str, run_id: str) -> tuple[dict[str, str], dict[str, list[tuple[int, float]]]]:
    """Params (as strings) and the full history of every metric of a run, sorted by step."""
    ### BEGIN SOLUTION
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    run = client.get_run(run_id)
    histories = {
        key: sorted((int(m.step), float(m.value)) for m in client.get_metric_history(run_id, key))
        for key in run.data.metrics
    }
    return dict(run.data.params), histories
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-tracking", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def new_store():
    """The bytes of a new, empty MLflow store (its SQLite file)."""
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as folder:
        db = Path(folder).resolve() / "mlflow.db"
        mlflow.MlflowClient(tracking_uri=f"sqlite:///{db}").search_experiments()  # creates the store
        return db.read_bytes()


@in_kernel
def log_runs(store, runs):
    """Your ``log_run`` for each ``(experiment, params, metrics)`` of ``runs``, in order, in a copy of
    ``store`` (the bytes of an MLflow SQLite file) in a temporary folder. Returns what the store
    then holds, read with ``MlflowClient``: for each run, the id log_run returned, its experiment,
    status, params and the history of each metric; the number of runs in each experiment; and
    the bytes of the store."""
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as folder:
        db = Path(folder).resolve() / "mlflow.db"
        db.write_bytes(store)
        uri = f"sqlite:///{db}"
        run_ids = [log_run(uri, experiment, params, metrics) for experiment, params, metrics in runs]
        client = mlflow.MlflowClient(tracking_uri=uri)
        observed = []
        for run_id in run_ids:
            if not isinstance(run_id, str):
                observed.append({"returned": type(run_id).__name__})
                continue
            run = client.get_run(run_id)
            histories = {key: client.get_metric_history(run_id, key) for key in run.data.metrics}
            observed.append(
                {
                    "run_id": run_id,
                    "experiment_id": run.info.experiment_id,
                    "experiment": client.get_experiment(run.info.experiment_id).name,
                    "status": run.info.status,
                    "params": dict(run.data.params),
                    "history": {key: sorted((m.step, m.value) for m in ms) for key, ms in histories.items()},
                }
            )
        experiments = {e.name: len(client.search_runs([e.experiment_id])) for e in client.search_experiments()}
        return observed, experiments, db.read_bytes()


@in_kernel
def read_run_in_store(store, run_id):
    """Your ``read_run`` on a copy of ``store`` (the bytes of an MLflow SQLite file), in a temporary folder."""
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as folder:
        db = Path(folder).resolve() / "mlflow.db"
        db.write_bytes(store)
        return read_run(f"sqlite:///{db}", run_id)


logged_params = {"lr": 0.001, "optimizer": "adamw", "layers": 2}
logged_metrics = {"loss": [(0, 1.0), (1, 0.6), (2, 0.45)], "val_acc": [(0, 0.5), (2, 0.75)]}
empty_store = new_store()
(run,), experiments, store = log_runs(empty_store, [("visible-tests", logged_params, logged_metrics)])
assert "run_id" in run, f"log_run should return the run id (a str), got {run.get('returned')}"
assert run["params"] == {"lr": "0.001", "optimizer": "adamw", "layers": "2"}, f"params in the store: {run['params']}"
assert run["history"].get("loss") == [(0, 1.0), (1, 0.6), (2, 0.45)], (
    f"the loss history in the store is {run['history'].get('loss')}"
)

params_back, metrics_back = read_run_in_store(store, run["run_id"])
assert params_back == {"lr": "0.001", "optimizer": "adamw", "layers": "2"}, f"read_run params: {params_back}"
assert metrics_back == {"loss": [(0, 1.0), (1, 0.6), (2, 0.45)], "val_acc": [(0, 0.5), (2, 0.75)]}, (
    f"read_run metrics: {metrics_back}"
)
### BEGIN HIDDEN TESTS
_forbidden_tracking = ("mlcraft.mlops.tracking.setup_tracking", "mlcraft.mlops.tracking.metric_history")
assert isinstance(run["run_id"], str), f"log_run should return the run id (a str), got {run['run_id']!r}"
assert run["experiment"] == "visible-tests", (
    f"the run should be in the experiment named 'visible-tests', it is in {run['experiment']!r}"
)
assert experiments.get("visible-tests") == 1, f"the experiment 'visible-tests' should hold one run: {experiments}"
assert run["status"] == "FINISHED", f"log_run should end its run (status FINISHED), got {run['status']}"
assert run["history"].get("val_acc") == [(0, 0.5), (2, 0.75)], (
    f"the val_acc history in the store is {run['history'].get('val_acc')}"
)

# A second run in the same experiment, steps given out of order, params that are 0; then a new
# experiment, with empty params and one metric; then a run with params and no metrics in it.
_params2 = {"lr": 0.0003, "batch_size": 64, "note": "second run", "weight_decay": 0.0, "warmup_steps": 0}
_metrics2 = {"loss": [(3, 0.3), (0, 1.2), (2, 0.5), (1, 0.8)], "lr": [(0, 1e-4), (10, 3e-4), (20, 3e-4)]}
_want_params2 = {k: str(v) for k, v in _params2.items()}
_want_metrics2 = {k: sorted(v) for k, v in _metrics2.items()}
(_run2, _run3, _run4), _experiments, _store = call_without(
    log_runs,
    store,
    [
        ("visible-tests", _params2, _metrics2),
        ("other-experiment", {}, {"score": [(5, 0.25)]}),
        ("other-experiment", {"seed": 0}, {}),
    ],
    forbidden=_forbidden_tracking,
)
for _obs in (_run2, _run3, _run4):
    assert isinstance(_obs.get("run_id"), str), f"log_run should return the run id (a str), got {_obs.get('returned')}"
assert len({run["run_id"], _run2["run_id"], _run3["run_id"]}) == 3, "each call to log_run should create a new run"
assert _run2["experiment_id"] == run["experiment_id"], "a second run with the same experiment name: same experiment"
assert _run2["status"] == "FINISHED", f"log_run should end its run (status FINISHED), got {_run2['status']}"
assert _run2["params"] == _want_params2, f"params in the store: {_run2['params']}"
for _key, _pairs in _want_metrics2.items():
    _stored = _run2["history"].get(_key)
    assert _stored == _pairs, f"metric {_key!r}: every (step, value) should be logged, store has {_stored}"
assert _experiments.get("visible-tests") == 2, f"the experiment should hold exactly two runs: {_experiments}"

assert _run3["experiment"] == "other-experiment" and _run3["experiment_id"] != run["experiment_id"], (
    f"log_run should create a new experiment, the run is in {_run3['experiment']!r}"
)
assert _experiments.get("other-experiment") == 2, f"the new experiment should hold two runs: {_experiments}"
assert _run4["experiment_id"] == _run3["experiment_id"], "the fourth run should reuse 'other-experiment'"
assert _run4["status"] == "FINISHED", f"a run with no metrics should still end (FINISHED), got {_run4['status']}"
assert _run4["params"] == {"seed": "0"} and _run4["history"] == {}, (
    f"params {{'seed': 0}} and no metrics: the store has {_run4['params']}, {_run4['history']}"
)
assert len(_experiments) == 3, f"only the experiments asked for (and MLflow's Default) should exist: {_experiments}"
assert _run3["status"] == "FINISHED", f"log_run should end its run (status FINISHED), got {_run3['status']}"
assert _run3["params"] == {}, f"no params were given, the store has {_run3['params']}"
assert _run3["history"].get("score") == [(5, 0.25)], f"score at step 5, the store has {_run3['history']}"

# read_run on runs logged here, with MlflowClient: steps out of order, several metrics, and other
# runs in the store (logged before and after, with the same metric names).
_own_dir = tempfile.TemporaryDirectory(ignore_cleanup_errors=True)
_own_db = Path(_own_dir.name).resolve() / "own.db"
_own_db.write_bytes(empty_store)
_own_client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{_own_db}")
_own_experiment = _own_client.create_experiment("other-experiment")
_own_logged = {
    "before": ({"alpha": "0.1"}, {"val_loss": [(0, 3.0), (1, 2.5)], "epoch": [(0, 0.0)]}),
    "own": (
        {"alpha": "0.5", "model": "mlp"},
        {"val_loss": [(4, 0.9), (1, 1.5), (3, 1.1), (0, 2.0), (2, 1.2)], "epoch": [(0, 0.0), (7, 1.0)]},
    ),
    "after": ({"alpha": "0.9", "model": "cnn"}, {"val_loss": [(2, 0.7), (0, 0.8)]}),
    "empty": ({}, {}),
}
_own_ids = {}
for _name, (_own_params, _own_metrics) in _own_logged.items():
    _own_id = _own_client.create_run(_own_experiment).info.run_id
    for _k, _v in _own_params.items():
        _own_client.log_param(_own_id, _k, _v)
    for _k, _pairs in _own_metrics.items():
        for _step, _val in _pairs:
            _own_client.log_metric(_own_id, _k, _val, step=_step)
    _own_client.set_terminated(_own_id)
    _own_ids[_name] = _own_id
_own_store = _own_db.read_bytes()
for _name in ("own", "after", "empty"):
    _own_params, _own_metrics = _own_logged[_name]
    _p, _m = call_without(read_run_in_store, _own_store, _own_ids[_name], forbidden=_forbidden_tracking)
    assert _p == _own_params, f"read_run params of the {_name!r} run: {_p}"
    assert set(_m) == set(_own_metrics), f"read_run should return every metric of the run, got {sorted(_m)}"
    for _k, _pairs in _own_metrics.items():
        assert _m[_k] == sorted(_pairs), (
            f"read_run {_k!r} of the {_name!r} run: the full history sorted by step is {sorted(_pairs)}, got {_m[_k]}"
        )
        assert all(type(s) is int and type(v) is float for s, v in _m[_k]), f"{_k!r}: steps int, values float"
_own_dir.cleanup()
_p2, _m2 = read_run_in_store(_store, _run2["run_id"])
assert _p2 == _want_params2, f"read_run of the second run: params {_p2}"
assert _m2 == _want_metrics2, f"read_run of the second run: metrics {_m2}"
### END HIDDEN TESTS
print("log_run and read_run: tests passed")


# %% [markdown] nbgrader={"grade": false, "grade_id": "task-drift-flags", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Task 6 — Which features drifted? (2 points)
#
# A monitoring job compares every feature of the live window with the reference and raises an
# alert naming the features that moved. Two statistics complement each other. PSI (Task 1)
# measures **how much** the distribution moved, in bins, whatever the window sizes. The
# two-sample Kolmogorov–Smirnov (KS) test asks whether the move could be **chance**: its
# p-value is small when two windows this large are unlikely to differ this much by sampling
# alone. With large windows KS flags shifts too small to matter; with small windows PSI is
# noisy. A feature is flagged when either says so.
#
# Testing many features at once needs care: with 20 stable features each tested at level
# `alpha = 0.01`, the chance that at least one is flagged by accident is about 18%. The
# **Bonferroni correction** tests each of the `F` features at level `alpha / F`, so that the
# chance of any false alarm stays below `alpha`.
#
# Write `drift_flags(reference, live, names, psi_threshold=0.2, alpha=0.01) -> list[str]`:
#
# - `reference` is a NumPy array `(N, F)`, `live` a NumPy array `(M, F)`, one column per
#   feature; `names` the `F` feature names.
# - For each column `j`: its PSI, `psi(reference[:, j], live[:, j])` with **your** `psi` and
#   its default `bins` and `floor`; and the KS p-value
#   `scipy.stats.ks_2samp(reference[:, j], live[:, j]).pvalue` (default arguments;
#   `scipy.stats` is imported in the first cell).
# - Column `j` is flagged if its PSI is `>= psi_threshold`, **or** its p-value is
#   `< alpha / F`.
# - Return the names of the flagged features, in column order (an empty list if none).
# - Raise `ValueError` if `reference` or `live` is not two-dimensional, if they have different
#   numbers of columns, or if `len(names)` is not the number of columns.
#
# The hidden tests use windows where only KS, only PSI, or only the uncorrected level would flag
# a feature. Do not call the course package's `drift_report` or `ks_test`.


# %% nbgrader={"grade": false, "grade_id": "drift-flags-answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def drift_flags(reference, live, names, psi_threshold: float = 0.2, alpha: float = 0.01) -> list[str]:
    """Names of the features whose PSI reaches ``psi_threshold`` or whose KS p-value is below ``alpha / F``."""
    ### BEGIN SOLUTION
    ref, cur = np.asarray(reference), np.asarray(live)
    if ref.ndim != 2 or cur.ndim != 2 or ref.shape[1] != cur.shape[1]:
        raise ValueError(f"reference and live must be (N, F) and (M, F), got {ref.shape} and {cur.shape}")
    n_features = ref.shape[1]
    if len(names) != n_features:
        raise ValueError(f"{len(names)} names for {n_features} features")
    flagged = []
    for j, name in enumerate(names):
        value = psi(ref[:, j], cur[:, j])
        pvalue = scipy.stats.ks_2samp(ref[:, j], cur[:, j]).pvalue
        if value >= psi_threshold or pvalue < alpha / n_features:
            flagged.append(name)
    return flagged
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-drift-flags", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
rng = np.random.default_rng(0)
reference_6 = np.column_stack([rng.normal(0, 1, 2000), rng.normal(0, 1, 2000), rng.exponential(1, 2000)])
live_6 = np.column_stack([rng.normal(0, 1, 1000), rng.normal(1.0, 1, 1000), rng.exponential(1, 1000)])
flags = drift_flags(reference_6, live_6, ["stable", "shifted", "also_stable"])
assert flags == ["shifted"], f"only the column shifted by one standard deviation should be flagged, got {flags}"
assert drift_flags(reference_6, reference_6[:700], ["a", "b", "c"]) == [], "a window against itself: no drift"
try:
    drift_flags(reference_6, live_6, ["only", "two"])
except ValueError:
    pass
else:
    raise AssertionError("drift_flags with 2 names for 3 features should raise ValueError")
### BEGIN HIDDEN TESTS
from mlcraft.mlops.drift import psi as _trusted_psi

_forbidden_flags = ("mlcraft.mlops.drift.drift_report", "mlcraft.mlops.drift.ks_test")


def _expected_flags(reference_, live_, names_, psi_threshold_=0.2, alpha_=0.01):
    f_ = reference_.shape[1]
    return [
        n_
        for j_, n_ in enumerate(names_)
        if _trusted_psi(reference_[:, j_], live_[:, j_]) >= psi_threshold_
        or scipy.stats.ks_2samp(reference_[:, j_], live_[:, j_]).pvalue < alpha_ / f_
    ]


def _flags(reference_, live_, names_, **kwargs):
    before = (reference_.copy(), live_.copy())
    result = call_without(drift_flags, reference_, live_, names_, forbidden=_forbidden_flags, **kwargs)
    assert np.array_equal(reference_, before[0]) and np.array_equal(live_, before[1]), "drift_flags modified its inputs"
    assert isinstance(result, list), f"drift_flags should return a list, got {type(result).__name__}"
    return result


def _column(seed, shift, n_ref=3000, n_live=1500):
    g = np.random.default_rng(seed)
    return g.normal(0, 1, n_ref), g.normal(shift, 1, n_live)


_names = ["stable", "borderline", "large_shift", "small_shift", "stable_2", "skewed"]
_pairs = [
    _column(10, 0.0),
    _column(4, 0.08),  # KS p about 0.003: flagged at alpha = 0.01, not at alpha / 6
    _column(12, 0.6),
    _column(13, 0.2),  # KS very significant, PSI well below 0.2
    _column(14, 0.0),
]
_g = np.random.default_rng(15)
_pairs.append((_g.lognormal(0, 0.5, 3000), _g.lognormal(0, 0.5, 1500)))
_ref6 = np.column_stack([p[0] for p in _pairs])
_live6 = np.column_stack([p[1] for p in _pairs])
_p_border = scipy.stats.ks_2samp(_ref6[:, 1], _live6[:, 1]).pvalue
assert 0.01 / 6 < _p_border < 0.01, f"test set-up: the borderline column's p-value is {_p_border}"
assert _trusted_psi(_ref6[:, 3], _live6[:, 3]) < 0.2 < _trusted_psi(_ref6[:, 2], _live6[:, 2]), "test set-up: PSI"
assert scipy.stats.ks_2samp(_ref6[:, 3], _live6[:, 3]).pvalue < 1e-6, "test set-up: the small shift is significant"
_want6 = _expected_flags(_ref6, _live6, _names)
assert _want6 == ["large_shift", "small_shift"], f"test set-up: expected flags {_want6}"
_got6 = _flags(_ref6, _live6, _names)
assert _got6 == _want6, f"six features: flag large_shift (PSI and KS) and small_shift (KS only), got {_got6}"
# Without the correction the borderline column would be flagged: with alpha = 0.05 it is (0.05 / 6 > p).
for _kw, _want in (
    ({"alpha": 0.05}, _expected_flags(_ref6, _live6, _names, alpha_=0.05)),
    ({"psi_threshold": 0.01}, _expected_flags(_ref6, _live6, _names, 0.01)),
):
    _got = _flags(_ref6, _live6, _names, **_kw)
    assert _got == _want, f"six features with {_kw}: expected {_want}, got {_got}"
# A small live window: PSI is large, KS cannot tell (6 rows).
_ref_small = np.column_stack([np.random.default_rng(16).normal(0, 1, 3000)] * 2)
_live_small = np.array([[-2.0, -0.1], [-2.0, 0.0], [-2.0, 0.1], [2.0, -0.2], [2.0, 0.2], [2.0, 0.05]])
assert scipy.stats.ks_2samp(_ref_small[:, 0], _live_small[:, 0]).pvalue > 0.01, "test set-up: KS not significant"
_want_small = _expected_flags(_ref_small, _live_small, ["tails", "centre"])
assert "tails" in _want_small, f"test set-up: {_want_small}"
_got_small = _flags(_ref_small, _live_small, ["tails", "centre"])
assert _got_small == _want_small, f"6 live rows, 'tails' flagged by PSI alone: expected {_want_small}, got {_got_small}"
# One feature: Bonferroni divides by 1, so the borderline column is flagged on its own.
assert _flags(_ref6[:, 1:2], _live6[:, 1:2], ["b"]) == ["b"], "a single feature with p < 0.01 should be flagged"

# Bonferroni, not Holm (or any step-down rule): with two features and alpha = 1.5 p, the borderline
# p-value is above alpha / 2 (Bonferroni: not flagged) but below alpha / 1, the level Holm uses
# for the second-smallest p-value once the first (large_shift, p about 0) is rejected.
_two = [2, 1]  # large_shift, borderline
_alpha_holm = 1.5 * _p_border
_want_holm = _expected_flags(_ref6[:, _two], _live6[:, _two], ["large_shift", "borderline"], alpha_=_alpha_holm)
assert _want_holm == ["large_shift"], f"test set-up: {_want_holm}"
_got = _flags(_ref6[:, _two], _live6[:, _two], ["large_shift", "borderline"], alpha=_alpha_holm)
assert _got == _want_holm, (
    f"2 features, alpha={_alpha_holm:.4g}: borderline p={_p_border:.4g} >= alpha / 2 is not flagged "
    f"(Bonferroni, not Holm); expected {_want_holm}, got {_got}"
)
# A p-value exactly equal to alpha / F is not flagged (strictly below); PSI exactly at the threshold is.
_two = [0, 1]  # stable, borderline
_alpha_edge = 2 * _p_border  # alpha / 2 == p exactly
_got = _flags(_ref6[:, _two], _live6[:, _two], ["stable", "borderline"], alpha=_alpha_edge)
assert _got == [], f"2 features, p-value == alpha / 2 exactly ({_p_border!r}): not flagged, got {_got}"
_got = _flags(_ref6[:, _two], _live6[:, _two], ["stable", "borderline"], alpha=math.nextafter(_alpha_edge, 1.0))
assert _got == ["borderline"], f"2 features, p-value one ulp below alpha / 2: flagged, got {_got}"
_same = _ref6[:400, :3]
_got = _flags(_same, _same.copy(), ["a", "b", "c"], psi_threshold=0.0)
assert _got == ["a", "b", "c"], f"identical windows have PSI 0, and psi_threshold=0.0 flags PSI >= 0: got {_got}"
# Both optional arguments together; column order, not name order.
_kw = {"psi_threshold": 0.5, "alpha": 0.05}
_want = _expected_flags(_ref6, _live6, _names, 0.5, 0.05)
_got = _flags(_ref6, _live6, _names, **_kw)
assert _got == _want, f"six features with {_kw}: expected {_want}, got {_got}"
_order = [3, 0, 2]  # small_shift, stable, large_shift
_names_order = ["zeta", "beta", "alpha"]
_want = _expected_flags(_ref6[:, _order], _live6[:, _order], _names_order)
assert _want == ["zeta", "alpha"], f"test set-up: {_want}"
_got = _flags(_ref6[:, _order], _live6[:, _order], _names_order)
assert _got == _want, f"flags should come in column order: expected {_want}, got {_got}"
for _bad_args, _why in (
    ((_ref6, _live6[:, :5], _names), "live with 5 columns, reference with 6"),
    ((_ref6[:, :5], _live6, _names[:5]), "live with 6 columns, reference with 5"),
    ((_ref6[:, 0], _live6[:, 0], ["x"]), "1-D windows"),
    ((_ref6[:, 0], _live6[:, :1], ["x"]), "a 1-D reference, a 2-D live window"),
    ((_ref6[:, :1], _live6[:, 0], ["x"]), "a 2-D reference, a 1-D live window"),
    ((_ref6[:, :2, None], _live6[:, :2, None], ["x", "y"]), "3-D windows (N, 2, 1)"),
    ((_ref6, _live6, _names[:-1]), "5 names for 6 features"),
    ((_ref6, _live6, [*_names, "extra"]), "7 names for 6 features"),
):
    try:
        drift_flags(*_bad_args)
    except ValueError:
        pass
    else:
        _shapes = f"reference {np.shape(_bad_args[0])}, live {np.shape(_bad_args[1])}, {len(_bad_args[2])} names"
        raise AssertionError(f"drift_flags with {_why} ({_shapes}) should raise ValueError")
### END HIDDEN TESTS
print("drift_flags: tests passed")


# %% [markdown] nbgrader={"grade": false, "grade_id": "wrap-up", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Wrap-up
#
# - Drift: bin by the **reference**'s quantiles, floor the fractions, and watch PSI per
#   feature. Bins from the live window move with the drift and hide it. Pair PSI with a test
#   (KS), and correct the test's level for the number of features.
# - Latency: report percentiles of raw timings, the tail above all. A mean is not a p99.
# - Validation at the edge: a strict schema (finite, in range, the right length, no extra
#   fields) turns bad input into a 422 error instead of a wrong prediction.
# - Export: check parity on every row of a held-out set, at batch size 1 and at a full batch,
#   with the model in eval mode, before the exported model is served.
# - Tracking: log every step of every metric, end the run, and read the history back from the
#   store rather than trusting what the training loop printed.
#
# The course package has production versions: `mlcraft.mlops.drift` (`psi`, `ks_test`,
# `drift_report`), `mlcraft.mlops.timing` (`percentile`, `summarize_latencies`),
# `mlcraft.mlops.serving` (the FastAPI service and its request models), `mlcraft.mlops.export`
# (`export_onnx`, `check_onnx_parity`) and `mlcraft.mlops.tracking` (`setup_tracking`,
# `MLflowCallback`, `metric_history`).


# %% [markdown] nbgrader={"grade": false, "grade_id": "self-check", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Self-check
#
# 1. Why must `psi` take its bin edges from the reference only? What would it report if each
#    window were cut at its own quantiles?
# 2. A bin holds 10% of the reference and none of the live window. With `floor=1e-4`, what does
#    that bin add to the PSI?
# 3. Timings of 10, 20, 30 and 40 ms: what are p50, p90 and p99 by linear interpolation? If you
#    forgot to sort, which inputs would still give the right answer?
# 4. Why does `PredictRequest` need strict mode to reject `True` and `"1.5"`, and why does
#    `allow_inf_nan=False` not reject `1e39`?
# 5. Give a faulty ONNX graph that `check_parity` would miss if it ran only each row alone, and one
#    it would miss if it ran only the whole batch. Why must the model be in eval mode?
# 6. `log_run` logs a metric at steps 3, 1 and 2, in that order. Why must `read_run` sort the
#    history by step, and what would logging every value at step 0 lose?
# 7. With 20 stable features, where does the 18% chance of a false alarm at `alpha = 0.01` come from,
#    and what level does each feature get under Bonferroni?
#
# <details><summary>Answers</summary>
#
# 1. Edges from the live window move with the drift: every window holds about `1/bins` in each of
#    its own bins, so the PSI is near 0 however far the data moved.
# 2. `(1e-4 - 0.1) × ln(1e-4 / 0.1) ≈ 0.69`: one emptied bin alone is well above the 0.25 of a major
#    shift.
# 3. p50 = 25 ms (`pos = 1.5`), p90 = 37 ms (`pos = 2.7`), p99 = 39.7 ms (`pos = 2.97`). Without the
#    sort, only inputs that arrive already in ascending order; real timings, in the order they
#    were measured, are not.
# 4. In lax mode pydantic converts: `True` becomes `1.0` and `"1.5"` becomes `1.5`. `1e39` is a
#    finite `float64`, so only the `float32` bound rejects it; in the model it would become `inf`.
# 5. A graph whose batch axis was fixed at 1, or that is wrong only when several rows are run
#    together (rows mixed within a batch), passes row by row; a graph that is wrong only at batch
#    size 1 passes on the whole batch. In train mode dropout makes the eager outputs random, and
#    the error measures the dropout, not the export.
# 6. The store does not promise to return the history in step order, and the tests log steps out of
#    order; sorting by step is the only order the caller can rely on. Logged all at step 0, the
#    values keep no step: the curve over training cannot be rebuilt.
# 7. `1 - 0.99^20 ≈ 0.18`: the chance that at least one of 20 independent tests at 0.01 fires.
#    Bonferroni tests each at `0.01 / 20 = 0.0005`, so the chance of any false alarm is at most
#    `20 × 0.0005 = 0.01`.
#
# </details>
