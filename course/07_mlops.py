# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 07 · MLOps: track, register, export, serve, monitor, roll back
#
# A model that nobody can reproduce, ship or watch is not finished. The notebook that trained it
# knows which learning rate won, which file holds the weights and what the inputs looked like;
# the day that notebook is closed, all of it is gone. This lesson takes one small model through
# the whole life after training, one step at a time (sections 2 to 8), and each step shows what goes
# wrong without it:
#
# - train a few runs and **track** them: parameters, metric curves and configs in a database;
# - what breaks **without tracking**: two results nobody can tell apart;
# - **register** versions and move aliases (`champion`, `challenger`): deploying is moving a pointer;
# - **export** to ONNX, check **parity** with PyTorch, and see what a frozen batch axis does;
# - **serve** the champion behind a validated HTTP API, in process and on a real server, under load;
# - **monitor** the inputs: catch a drifted feature with PSI and the Kolmogorov–Smirnov test;
# - **roll back** a bad release in one call.
#
# Everything runs offline on the CPU in a minute or two. The tracking store, the registry and
# the exported files live in a temporary folder that section 9 deletes, and every server the
# notebook starts is stopped before it ends.
#
# **You will be able to…**
#
# - track training runs in MLflow (full config as params, metric curves, figures) and answer
#   "what changed between these two runs?" with a query instead of from memory;
# - register model versions, gate a release on held-out data, and promote or roll back by moving
#   an alias, from any process;
# - export a PyTorch model to ONNX with a dynamic batch axis, check parity at several batch sizes,
#   and measure eager PyTorch against onnxruntime;
# - serve a registered model behind a FastAPI service that rejects bad input with a 422 and names
#   the version in every answer, and report its p50 and p99 latency alone and under load;
# - monitor live inputs with PSI and the Kolmogorov–Smirnov test, check both against a hand
#   computation and SciPy, and name the feature that drifted;
# - catch a bad release from a labelled live batch and undo it in one call.
#
# **Prerequisites**: lessons `00_orientation` (seeding, devices), `01_training_loops` (the
# `Trainer`, `TrainingConfig` and callbacks, which `MLflowCallback` plugs into), `05_tabular`
# (held-out evaluation, and the production notes that point to ONNX) and `06_data` (data
# contracts and PSI, section 11). Outside the course: HTTP requests, JSON and status codes;
# hypothesis tests and p-values at an introductory level.
#
# **Time**: reading about 30 min; exercise `exercises/07_mlops` about 120 min; running the whole
# notebook took 20 s (measured once, one intra-op thread, under `pytest --nbval-lax`) on a 2-core CPU; GPU: not measured (nothing here needs one).

# %%
# Set-up: on Colab, install the course package; everywhere else this cell does nothing.
import sys

if "google.colab" in sys.modules:
    import subprocess

    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "mlcraft[course] @ git+https://github.com/mlcraft/mlcraft"], check=True)


# %%
import json
import math
import tempfile
import threading
import time
from pathlib import Path

import httpx
import matplotlib.pyplot as plt
import numpy as np
import scipy.special
import scipy.stats
import torch
from fastapi.testclient import TestClient

from mlcraft.config import TrainingConfig
from mlcraft.data import make_tabular_data
from mlcraft.data.tabular import CLASS_NAMES, FEATURE_NAMES
from mlcraft.mlops import (
    MLflowCallback,
    OnnxPredictor,
    alias_history,
    alias_version,
    check_onnx_parity,
    compare_runtimes,
    drift_report,
    export_onnx,
    inject_drift,
    ks_test,
    load_model_by_alias,
    log_figure,
    log_torch_model,
    memory_footprint,
    metric_history,
    onnx_session,
    percentile,
    plot_drift,
    promote,
    psi,
    register_model,
    registry_tracking,
    rollback,
    setup_tracking,
    summarize_latencies,
)
from mlcraft.mlops.loadtest import BackgroundServer, run_load_test
from mlcraft.mlops.serving import create_app
from mlcraft.models import TabularMLPConfig, predict_proba
from mlcraft.recipes import train_tabular_mlp
from mlcraft.utils import configure_logging

configure_logging("ERROR")  # the mlops modules log every request and alias move; keep the notebook quiet
torch.set_num_threads(1)  # small models: one thread is as fast and does not fight other programs for cores
plt.rcParams.update({"axes.grid": True, "grid.alpha": 0.3})

workdir = tempfile.TemporaryDirectory(prefix="mlcraft-07-")  # deleted in the last cell
root = Path(workdir.name)
print(f"torch {torch.__version__}; everything this lesson writes goes to {root}")

# %% [markdown]
# ## 1. The model and the data
#
# The model is `mlcraft.mlops.TabularMLP`, a small MLP for a synthetic table of eight features
# (`age`, `income`, `tenure`, ...) and three classes. The data comes from a fixed formula plus
# noise, so it is the same on every machine and we know exactly what a real change in the inputs
# looks like. The model standardizes its own inputs (mean and std are buffers fitted on the
# training set), so whatever we ship takes raw features: the preprocessing travels with the weights.
#
# **Predict, then run.** 2000 rows split 0.8 / 0.2, and a holdout of 1000: what shapes will the
# three feature arrays have?

# %%
train, val = make_tabular_data(2000, seed=0).split(0.8)
holdout = make_tabular_data(1000, seed=1)  # rows no run has seen: the release gate and the live traffic
print(f"train {train.features.shape}, val {val.features.shape}, holdout {holdout.features.shape}")
print("features:", ", ".join(FEATURE_NAMES), "| classes:", ", ".join(CLASS_NAMES))
print("class counts in train:", np.bincount(train.labels).tolist())


def accuracy(model, data):
    """Fraction of rows of `data` whose most probable class is the label."""
    return float((predict_proba(model, data.features).argmax(-1) == data.labels).mean())


# %% [markdown]
# ## 2. Track every run
#
# MLflow keeps runs in a *tracking store*. Here it is a SQLite database in our temporary folder
# (params, metrics, tags and the model registry) plus a folder of artifacts (configs, plots,
# models); on a team it is a tracking server, and only the URI changes. `setup_tracking` creates
# the store and an experiment in it. `MLflowCallback` plugs into the course's `Trainer`: at the
# start it logs the whole training config and the model config as params, then every logged step
# (`train_loss`, `lr`, `grad_norm`) and every evaluation (`val_loss`, `val_accuracy`) as metrics
# indexed by step, and at the end `best_val_accuracy`.
#
# Three runs: a small baseline and two wider models with different learning rates.
#
# **Predict, then run.** A hidden layer of 8 against two layers of 64, at learning rates 3e-3 and
# 3e-2, 8 epochs each. Which run reaches the best validation accuracy?

# %%
tracking = setup_tracking("07-tabular", root=root / "mlruns")
print("tracking store:", tracking.tracking_uri)

experiments = {
    "baseline": (TabularMLPConfig(hidden=(8,)), 3e-3),
    "wide-lr3e-3": (TabularMLPConfig(hidden=(64, 64)), 3e-3),
    "wide-lr3e-2": (TabularMLPConfig(hidden=(64, 64)), 3e-2),
}
models, run_ids = {}, {}
for run_name, (model_config, lr) in experiments.items():
    training_config = TrainingConfig(
        lr=lr, batch_size=64, epochs=8, amp=False, progress=False, log_every=5, seed=0,
        monitor="val_accuracy", monitor_mode="max",
    )  # fmt: skip
    callback = MLflowCallback(tracking, run_name=run_name, extra_params={"model": model_config}, tags={"lesson": "07"})
    models[run_name] = train_tabular_mlp(
        train, val, model_config=model_config, training_config=training_config, callbacks=[callback]
    )
    run_ids[run_name] = callback.run_id
    print(f"{run_name:<12} run {callback.run_id[:8]}  val accuracy {accuracy(models[run_name], val):.3f}")

# %% [markdown]
# Everything we need to compare the runs is now in the store, not in this notebook's variables.
# Let's read it back the way a colleague would, with a fresh `MlflowClient`: one row per run, the
# params that differ, and the best validation accuracy.

# %%
client = tracking.client()
runs = client.search_runs([tracking.experiment_id], order_by=["metrics.best_val_accuracy DESC"])
print(f"{'run':<13}{'model.hidden':<14}{'train.lr':<10}{'parameters':>11}{'best val acc':>14}")
for run in runs:
    p = run.data.params
    print(
        f"{run.info.run_name:<13}{p['model.hidden']:<14}{p['train.lr']:<10}{p['model.parameters']:>11}"
        f"{run.data.metrics['best_val_accuracy']:>14.3f}"
    )
best_run = runs[0]
print("best run:", best_run.info.run_name)
assert len(runs) == 3 and best_run.info.run_name != "baseline"

# %% [markdown]
# The curves come back from the store too (`metric_history` reads every logged step).
#
# **Predict, then run.** Validation accuracy is logged once per epoch. How many points will each
# `val_accuracy` curve have?

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
for run_name, run_id in run_ids.items():
    steps, losses = zip(*metric_history(tracking, run_id, "train_loss"), strict=True)
    axes[0].plot(steps, losses, label=run_name)
    steps, accs = zip(*metric_history(tracking, run_id, "val_accuracy"), strict=True)
    axes[1].plot(steps, accs, marker="o", label=run_name)
axes[0].set(title="train_loss (read back from MLflow)", xlabel="optimizer step", ylabel="loss")
axes[1].set(title="val_accuracy (one point per epoch)", xlabel="optimizer step", ylabel="accuracy")
axes[0].legend()
fig.tight_layout()
plt.show()
log_figure(tracking, best_run.info.run_id, fig, "plots/curves.png")  # the picture travels with the run
print("artifacts of the best run:", [a.path for a in client.list_artifacts(best_run.info.run_id)],
      [a.path for a in client.list_artifacts(best_run.info.run_id, "plots")])  # fmt: skip

# %% [markdown]
# To browse the same store in MLflow's web UI, run this in a terminal (not in the notebook: it is
# a server that runs until you stop it). The course installs the lightweight `mlflow-skinny`,
# which has no web UI; `pip install mlflow` adds it.

# %%
print(f"mlflow ui --backend-store-uri {tracking.tracking_uri}")

# %% [markdown]
# ## 3. What breaks without tracking
#
# Here is the everyday version of the problem. A notebook trains "the same model" twice, a few
# days apart; in between, somebody changed the batch size in a cell further up and re-ran the
# notebook from the middle. Both runs end with a number.
#
# **Predict, then run.** Same data, same seed, same learning rate, batch 64 against batch 256 for
# the same 8 epochs. Will the two accuracies be equal?

# %%
untracked = {}
for day, batch_size in (("monday", 64), ("friday", 256)):  # the 256 was typed into a cell later overwritten
    config = TrainingConfig(lr=3e-3, batch_size=batch_size, epochs=8, amp=False, progress=False, seed=0)
    untracked[day] = accuracy(train_tabular_mlp(train, val, training_config=config), val)
del batch_size, config  # the notebook moved on: the settings are gone, only the numbers remain
print({day: round(acc, 3) for day, acc in untracked.items()})

# %% [markdown]
# Two accuracies, and nothing that says why they differ: a regression in the code, another seed,
# other data, other settings? With tracking the question is one query. Every run's full config is
# stored, so the difference between any two runs is a dictionary diff.
#
# **Predict, then run.** How many params will differ between `wide-lr3e-3` and `wide-lr3e-2`, and
# how will the learning rate be stored: as a number or as a string?


# %%
def param_diff(run_a, run_b):
    """{param: (value in a, value in b)} for every param that differs between two tracked runs."""
    a, b = client.get_run(run_a).data.params, client.get_run(run_b).data.params
    return {k: (a.get(k), b.get(k)) for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)}


diff = param_diff(run_ids["wide-lr3e-3"], run_ids["wide-lr3e-2"])
print("wide-lr3e-3 vs wide-lr3e-2:", diff)
assert diff == {"train.lr": ("0.003", "0.03")}, diff
print("n params logged per run:", len(client.get_run(run_ids["baseline"]).data.params))

# %% [markdown]
# The diff names the one setting that changed, and nothing else, because everything else was
# recorded too (schedule, warmup, weight decay, clipping, seed, model shape: 30 params in all). That is the
# point of logging the whole config rather than the two values you think matter today.
#
# ## 4. Register versions, move aliases
#
# A run is an experiment; a **registered model version** is something you may deploy. We log the
# trained module into its run (`log_torch_model`: MLflow's `pt2` format, a `torch.export` graph
# that loads without unpickling any code, with a signature whose batch axis is dynamic), then
# register it. Each registration creates a new immutable version; an **alias** is a movable
# pointer to one version, and the server will load `models:/tabular-mlp@champion`. Deploying is
# moving `champion`; rolling back is moving it back. No weights are copied.
#
# The baseline goes to production first (version 1, `champion`). The best run becomes version 2,
# `challenger`.
#
# **Predict, then run.** Which versions will `champion` and `challenger` point to after the two
# registrations?

# %%
MODEL_NAME = "tabular-mlp"
example = holdout.features[:16]


def log_and_register(run_name, alias):
    info = log_torch_model(models[run_name], example, run_id=run_ids[run_name], tracking=tracking)
    return register_model(tracking, info.model_uri, MODEL_NAME, alias=alias, class_names=CLASS_NAMES)


v1 = log_and_register("baseline", "champion")
v2 = log_and_register(best_run.info.run_name, "challenger")
print(f"champion -> version {alias_version(tracking, MODEL_NAME, 'champion')}, "
      f"challenger -> version {alias_version(tracking, MODEL_NAME, 'challenger')}")  # fmt: skip

# %% [markdown]
# Before promoting, a release gate: load both versions *from the registry* (not from this
# notebook's memory: what is registered is what gets served) and compare them on the holdout set.
# The registry also gives back exactly the function we trained: its outputs match the in-memory
# model.
#
# **Predict, then run.** Which version scores higher on the holdout? After `promote`, which
# version will `champion` point to, and what will its history hold?

# %%
loaded = {alias: load_model_by_alias(tracking, MODEL_NAME, alias) for alias in ("champion", "challenger")}
gate = {alias: float((m.predictor().predict_proba(holdout.features).argmax(-1) == holdout.labels).mean())
        for alias, m in loaded.items()}  # fmt: skip
for alias, m in loaded.items():
    print(f"{alias:<11} version {m.version}  holdout accuracy {gate[alias]:.3f}")
torch.testing.assert_close(
    loaded["challenger"].predictor().predict_proba(holdout.features),
    predict_proba(models[best_run.info.run_name], holdout.features),
    rtol=1e-5, atol=1e-6, msg="the registered model differs from the trained one",
)  # fmt: skip
assert gate["challenger"] > gate["champion"], "the challenger must beat the champion to be promoted"
move = promote(tracking, MODEL_NAME)
print(f"promoted: champion {move.previous} -> {move.current}; history of champion: {alias_history(tracking, MODEL_NAME, 'champion')}")
assert alias_version(tracking, MODEL_NAME, "champion") == v2 and alias_version(tracking, MODEL_NAME, "challenger") is None

# %% [markdown]
# `promote` moved `champion` to the challenger's version, removed `challenger`, and appended the
# version `champion` left to a history kept in the registry itself (a tag on the registered
# model), so any process can roll back later, not only the one that promoted.
#
# ## 5. Export to ONNX and check parity
#
# A PyTorch model needs PyTorch (hundreds of MB) and Python to run. ONNX is a file format for the
# computation graph with its weights; onnxruntime runs it from C++, C#, Java, JavaScript, mobile
# and Python, with a runtime a fraction of PyTorch's size, and it is often faster for small models. `export_onnx` uses
# PyTorch's `torch.export`-based exporter and names axis 0 `batch`, so any batch size works.
#
# An exported graph is a *different program* from the PyTorch module, so it must be checked like
# one: `check_onnx_parity` runs both on every holdout row at several batch sizes (1, 7, all) and
# reports the largest absolute difference of the logits.
#
# **Predict, then run.** Will the largest logit difference between PyTorch and onnxruntime be
# exactly 0, around 1e-6, or around 1e-2? Will the `.onnx` file be larger or smaller than the
# weights alone?

# %%
champion_model = models[best_run.info.run_name]
onnx_path = export_onnx(champion_model, torch.from_numpy(example), root / "tabular.onnx")
session = onnx_session(onnx_path)
print(f"{onnx_path.name}: {onnx_path.stat().st_size / 1024:.1f} KiB, input {session.get_inputs()[0].shape}")
parity = check_onnx_parity(champion_model, session, holdout.features)
print(parity)
assert parity.passed and parity.argmax_agreement == 1.0
footprint = memory_footprint(champion_model, onnx_path, example)
print(f"weights in PyTorch: {footprint.torch_parameter_bytes / 1024:.1f} KiB; .onnx file (graph + weights): "
      f"{footprint.onnx_file_bytes / 1024:.1f} KiB")  # fmt: skip

# %% [markdown]
# **Without the dynamic axis.** Export traces the model on one example. If nothing says the batch
# axis may vary, the exporter bakes the example's size into the graph: the file exports, it loads,
# and it answers correctly for batches of exactly 16 rows. The first request with one row fails.
#
# **Predict, then run.** What input shape will the fixed export report, next to the
# `['batch', 8]` of the first export?

# %%
fixed_path = root / "tabular_fixed_batch.onnx"
torch.onnx.export(champion_model, (torch.from_numpy(example),), str(fixed_path), input_names=["features"],
                  dynamo=True, external_data=False, verbose=False)  # fmt: skip
fixed = onnx_session(fixed_path)
print("input shape of the fixed export:", fixed.get_inputs()[0].shape)
print("batch of 16 works:", fixed.run(None, {"features": example})[0].shape)
try:
    fixed.run(None, {"features": holdout.features[:1]})
except Exception as err:  # onnxruntime raises its own InvalidArgument error type
    print(f"batch of 1: {type(err).__name__}: {str(err).strip()[:200]}")
    assert "invalid dimensions" in str(err)
else:
    raise AssertionError("a fixed-batch graph should reject a batch of 1")

# %% [markdown]
# That is why parity is checked at several batch sizes, including 1: a check on the export
# example alone would have passed.
#
# **Eager vs onnxruntime.** `compare_runtimes` times one forward pass of each, alternating calls so
# that noise from other programs falls on both alike, at batch 1 (an online request) and 256 (a
# batch job). Both use one thread.
#
# **Predict, then run.** At batch 1, which is faster, eager PyTorch or onnxruntime? Will the gap
# widen or narrow at batch 256?

# %%
comparisons = compare_runtimes(champion_model, session, holdout.features, batch_sizes=(1, 256), repeats=100, warmup=10)
print(f"{'batch':>6}{'eager p50 ms':>14}{'onnx p50 ms':>13}{'eager p99 ms':>14}{'onnx p99 ms':>13}{'speed-up p50':>14}")
for c in comparisons:
    print(f"{c.batch_size:>6}{c.eager.p50_ms:>14.3f}{c.onnx.p50_ms:>13.3f}{c.eager.p99_ms:>14.3f}{c.onnx.p99_ms:>13.3f}"
          f"{c.speedup_p50:>13.1f}x")  # fmt: skip

fig, axes = plt.subplots(1, len(comparisons), figsize=(9, 3.2))
for ax, c in zip(axes, comparisons, strict=True):
    ax.bar(["eager p50", "onnx p50", "eager p99", "onnx p99"], [c.eager.p50_ms, c.onnx.p50_ms, c.eager.p99_ms, c.onnx.p99_ms],
           color=["tab:blue", "tab:orange", "tab:blue", "tab:orange"])  # fmt: skip
    ax.set(title=f"batch {c.batch_size}", ylabel="ms per forward pass")
fig.tight_layout()
plt.show()

# %% [markdown]
# For a model this small, most of an eager call is PyTorch's per-operator overhead in Python, which
# onnxruntime does not pay; at large batches the matrix products dominate and the gap narrows. Your
# numbers depend on the machine: measure on the one you deploy to.
#
# ## 6. Serve the champion
#
# `create_app` builds a FastAPI service around a *loader*, called once at start-up: ours resolves
# `tabular-mlp@champion` in the registry and loads that version. The service validates every
# request before it reaches the model (finite float32 numbers, the right number of features, no
# extra fields, bounded batches) and answers bad input with 422 and a message that names the
# field. Every answer carries the model version, so a client (and its logs) always know which
# model answered.
#
# First in process, with FastAPI's `TestClient` (no network, the way the service's tests run):

# %%
registry = registry_tracking(tracking.tracking_uri)  # what a server process gets: only the store's URI


def champion_loader():
    return load_model_by_alias(registry, MODEL_NAME, "champion").predictor()


app = create_app(champion_loader, allow_reload=True)
row = holdout.features[0].tolist()
with TestClient(app) as test_client:
    print("GET /ready ->", test_client.get("/ready").json())
    answer = test_client.post("/predict", json={"features": row})
    print("valid row ->", answer.status_code, json.dumps(answer.json()))
    assert answer.status_code == 200 and answer.json()["model_version"] == v2
    bad_requests = {
        "a NaN": '{"features": [NaN, 2, 3, 4, 5, 6, 7, 8]}',
        "7 features": json.dumps({"features": row[:7]}),
        "a string": json.dumps({"features": ["45", *row[1:]]}),
        "wrong field": json.dumps({"rows": [row]}),
    }
    for what, body in bad_requests.items():
        reply = test_client.post("/predict", content=body, headers={"content-type": "application/json"})
        print(f"{what:<12}-> {reply.status_code} {reply.json()['message']}")
        assert reply.status_code == 422

# %% [markdown]
# Without that validation, here is what the model itself does with the same two requests. The NaN
# goes straight through: the probabilities are NaN, and `argmax` over NaNs returns index 0, a
# class that looks like an answer. The short row fails deep inside PyTorch, which a service would
# turn into a 500 with a stack trace in its log and nothing useful for the client:

# %%
nan_row = np.array([[np.nan, *row[1:]]], dtype=np.float32)
nan_probs = predict_proba(champion_model, nan_row)
print(f"NaN row -> probabilities {nan_probs[0].tolist()} -> argmax says {CLASS_NAMES[int(nan_probs.argmax())]!r}")
assert np.isnan(nan_probs).all()
try:
    predict_proba(champion_model, [row[:7]])
except RuntimeError as err:
    print(f"7 features -> RuntimeError: {err}")
else:
    raise AssertionError("a 7-feature row should not fit an 8-feature model")

# %% [markdown]
# The service does not care what runs the model, only that it has `predict_proba`, a name, a
# version and class names. `OnnxPredictor` wraps the exported file in the same interface, so the
# same API can serve onnxruntime with no PyTorch in the request path; its answer matches the
# PyTorch one.
#
# **Predict, then run.** 64 rows through both services. How far apart will the probabilities be,
# given the parity check of section 5?

# %%
onnx_app = create_app(lambda: OnnxPredictor(onnx_path, name=MODEL_NAME, version=v2, class_names=CLASS_NAMES))
with TestClient(app) as torch_client, TestClient(onnx_app) as onnx_client:
    batch = {"instances": holdout.features[:64].tolist()}
    from_torch = torch_client.post("/predict/batch", json=batch).json()["predictions"]
    from_onnx = onnx_client.post("/predict/batch", json=batch).json()["predictions"]
gap = max(abs(a - b) for pt, po in zip(from_torch, from_onnx, strict=True)
          for a, b in zip(pt["probabilities"], po["probabilities"], strict=True))  # fmt: skip
print(f"64 rows through both services: max |p_torch - p_onnx| = {gap:.2e}")
assert gap < 1e-5 and [p["class_index"] for p in from_torch] == [p["class_index"] for p in from_onnx]

# %% [markdown]
# Now a real HTTP server: uvicorn on `127.0.0.1`, on a port the OS picks, in a background thread
# of this kernel. `BackgroundServer` can span several cells; the `try`/`finally` makes sure it
# stops even if something in between fails. We time 200 sequential requests, then run a bounded
# load test: 200 requests from 4 concurrent clients.
#
# **Predict, then run.** With 4 clients instead of 1, will p50 and p99 go up, down or stay? Will
# the requests per second roughly quadruple?

# %%
server = BackgroundServer(app)
server.start()
try:
    print("serving at", server.url)
    payloads = [{"features": r} for r in holdout.features[:200].tolist()]
    sequential = []
    with httpx.Client(base_url=server.url, timeout=5.0) as http:
        for payload in payloads:
            start = time.perf_counter()
            reply = http.post("/predict", json=payload)
            sequential.append(time.perf_counter() - start)
            assert reply.status_code == 200, reply.text
        print("X-Model-Version header:", reply.headers["x-model-version"])
        load = run_load_test(f"{server.url}/predict", payloads, n_requests=200, concurrency=4, max_seconds=30)
        metrics_text = http.get("/metrics").text
finally:
    server.stop()
assert not server.running
try:
    httpx.get(f"http://{server.server.host}:{server.server.port}/health", timeout=1.0)
except httpx.ConnectError:
    print("after stop(): connection refused, the port is closed")
else:
    raise AssertionError("the server should be gone")

seq = summarize_latencies(sequential)
print(f"sequential: {seq}; {1000 / seq.mean_ms:.0f} requests/s")
print(f"load test:  {load}")
assert load.errors == 0 and load.ok == 200
print("\n".join(line for line in metrics_text.splitlines() if line.startswith(("mlcraft_requests_total", "mlcraft_predictions"))))

# %% [markdown]
# A mean hides what users notice: the slow requests. The histogram shows the whole distribution
# with its p50 and p99.
#
# **Predict, then run.** Will p99 sit close to p50, or at several times it?

# %%
ms = 1000 * np.asarray(sequential)
fig, ax = plt.subplots(figsize=(7, 3.2))
ax.hist(ms, bins=40, color="tab:blue", alpha=0.8)
for q, style in ((50, "--"), (99, ":")):
    ax.axvline(percentile(ms, q), color="black", linestyle=style, label=f"p{q} = {percentile(ms, q):.2f} ms")
ax.set(title="POST /predict on 127.0.0.1, one client", xlabel="latency (ms)", ylabel="requests")
ax.legend()
plt.show()
assert math.isclose(percentile(ms, 50), float(np.percentile(ms, 50)), rel_tol=1e-12)

# %% [markdown]
# With 4 clients at once, requests wait for each other: p50 and p99 of the load test are higher
# than one client's, and the p99 under load is what a service-level objective is written against.
# Throughput hardly grows here, because the server and its four clients share this process and
# its Python interpreter on a small machine. A server in its own process, with several workers,
# is what scales; `benchmarks/bench_serving.py` measures it that way.
#
# ## 7. Monitor the inputs
#
# A served model fails silently. When the inputs change, it keeps answering 200 with confident
# probabilities; only the labels, which arrive days later if ever, would tell. What we can watch
# at once is the *input distribution*: compare a window of live requests with a reference window
# (the training data), feature by feature.
#
# - **PSI** (population stability index): cut the reference into 10 bins at its deciles, take the
#   fraction of each window in each bin, and sum `(live - ref) * ln(live / ref)`. Rule of thumb:
#   below 0.1 stable, above 0.25 a major shift.
# - **Kolmogorov–Smirnov**: the largest gap `D` between the two empirical CDFs, with a p-value; with
#   8 features each is tested at `alpha / 8` (Bonferroni).
#
# `drift_report` flags a feature when its PSI reaches 0.2 or when KS rejects (with `D >= 0.05`, so
# a huge window does not flag a negligible shift).
#
# Two live windows: one from the same process as the training data, and one where an upstream
# change has added about one standard deviation to `income` (`inject_drift`).
#
# **Predict, then run.** Which features will be flagged in each window? For the drifted `income`,
# will PSI be just above 0.25, or several times it?

# %%
reference = train.features
income = FEATURE_NAMES.index("income")
live_ok = holdout.features
live_drift = inject_drift(holdout.features, column=income, shift=1.0)

report_ok = drift_report(reference, live_ok, feature_names=FEATURE_NAMES)
report_drift = drift_report(reference, live_drift, feature_names=FEATURE_NAMES)
print("live window, no drift\n" + report_ok.table())
print("\nlive window, income shifted\n" + report_drift.table())
assert not report_ok.any_drift and report_drift.drifted == ["income"]

# %%
fig = plot_drift(reference, live_drift, report_drift)
fig.suptitle("reference (training) vs live window with drift: fraction per reference-decile bin", y=1.02)
plt.show()

# %% [markdown]
# Only `income` moved; the other panels show the noise of a window of 1 000 rows (PSI around 0.01
# to 0.02). `visits` is a count, so several of its deciles coincide and the tied bins merge (6 bars
# instead of 10).
#
# PSI is short enough to compute by hand, and KS is in SciPy; both must agree with the
# `mlcraft` versions.
#
# **Predict, then run.** Will the hand-computed PSI agree with `mlcraft`'s to 1e-12? Will the KS
# statistic `D` agree with SciPy's, and will the p-values agree as well?

# %%
ref_col, live_col = reference[:, income].astype(np.float64), live_drift[:, income].astype(np.float64)
edges = np.unique(np.quantile(ref_col, np.linspace(0, 1, 11)[1:-1]))  # 9 inner edges: 10 bins of 10% each
ref_frac = np.bincount(np.searchsorted(edges, ref_col, side="right"), minlength=edges.size + 1) / ref_col.size
live_frac = np.bincount(np.searchsorted(edges, live_col, side="right"), minlength=edges.size + 1) / live_col.size
ref_frac, live_frac = np.maximum(ref_frac, 1e-4), np.maximum(live_frac, 1e-4)  # an empty bin would give log(0)
psi_by_hand = float(np.sum((live_frac - ref_frac) * np.log(live_frac / ref_frac)))
print(f"live fraction per bin: {np.round(live_frac, 3).tolist()}")
print(f"PSI income: by hand {psi_by_hand:.6f}, mlcraft {psi(ref_col, live_col):.6f}")
assert abs(psi_by_hand - psi(ref_col, live_col)) < 1e-12

for window_name, window in (("no drift", live_ok), ("drift", live_drift)):
    column = window[:, income].astype(np.float64)
    ours, theirs = ks_test(ref_col, column), scipy.stats.ks_2samp(ref_col, column, method="asymp")
    n, m = ref_col.size, column.size
    limiting_p = float(scipy.special.kolmogorov(math.sqrt(n * m / (n + m)) * ours.statistic))
    print(f"KS income, {window_name:<8}: D {ours.statistic:.4f} (scipy {theirs.statistic:.4f}), "
          f"p {ours.pvalue:.3g} (Kolmogorov Q {limiting_p:.3g}, scipy ks_2samp {theirs.pvalue:.3g})")  # fmt: skip
    assert abs(ours.statistic - theirs.statistic) < 1e-12
    assert abs(ours.pvalue - limiting_p) < 1e-12

# %% [markdown]
# `D` is the same number as SciPy's. The p-value is the limiting Kolmogorov distribution
# `Q(sqrt(n m / (n + m)) D)` exactly; SciPy's `ks_2samp` applies a finite-sample correction, so
# its p-value differs a little near 0.5 and by orders of magnitude in the far tail, where both
# say the same thing: not the same distribution.
#
# **What the drift costs, and why nobody would notice.** The labels of these rows did not change;
# only what the model sees did. As the shift grows, PSI and `D` grow and the champion's accuracy
# on the labelled holdout falls, while the service still answers every request with 200. The
# dotted lines are the PSI rules of thumb.
#
# **Predict, then run.** At which shift will PSI pass 0.25, and how much accuracy will the
# champion have lost by then: several points, or one or two?

# %%
champion = load_model_by_alias(registry, MODEL_NAME, "champion").predictor()
shifts = [0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0]
sweep = []
for shift in shifts:
    window = inject_drift(holdout.features, column=income, shift=shift)
    acc = float((champion.predict_proba(window).argmax(-1) == holdout.labels).mean())
    sweep.append((psi(ref_col, window[:, income]), ks_test(ref_col, window[:, income]).statistic, acc))
    print(f"shift {shift:4.2f} std: PSI {sweep[-1][0]:6.3f}  KS D {sweep[-1][1]:.3f}  champion accuracy {acc:.3f}")
psi_values, ks_values, accuracies = map(np.array, zip(*sweep, strict=True))
assert np.all(np.diff(psi_values) > 0) and accuracies[-1] < accuracies[0] - 0.05

fig, ax = plt.subplots(figsize=(7, 3.4))
ax.plot(shifts, psi_values, "o-", color="tab:red", label="PSI (income)")
ax.plot(shifts, ks_values, "s-", color="tab:purple", label="KS D (income)")
for level in (0.1, 0.25):
    ax.axhline(level, color="grey", linestyle=":", linewidth=1)
ax.set(xlabel="shift of income (in standard deviations of income)", ylabel="drift statistic", yscale="log")
acc_ax = ax.twinx()
acc_ax.plot(shifts, accuracies, "^--", color="tab:green", label="champion accuracy")
acc_ax.set_ylabel("accuracy on labelled holdout")
acc_ax.grid(False)
handles = ax.get_legend_handles_labels()[0] + acc_ax.get_legend_handles_labels()[0]
ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3)
plt.show()

# %% [markdown]
# The input monitor fires early: PSI passes 0.25 at a shift of about 0.3 standard deviations, when
# the accuracy has lost only a point or two, and it needs no labels at all. Accuracy needs labels,
# which is why the next section uses it as the second line of defence, on a batch whose outcomes
# have come back.
#
# ## 8. Roll back a bad release
#
# A new version goes out without the release gate: somebody registers a model trained for a
# fraction of an epoch and promotes it straight away. The next time the service starts, it loads
# whatever `champion` points to: version 3.
#
# **Predict, then run.** What will the alias history of `champion` hold after this promotion?

# %%
bad_config = TrainingConfig(lr=1e-4, batch_size=64, max_steps=3, amp=False, progress=False, seed=0)
bad_callback = MLflowCallback(tracking, run_name="hotfix", extra_params={"model": TabularMLPConfig()})
models["hotfix"] = train_tabular_mlp(train, val, training_config=bad_config, callbacks=[bad_callback])
run_ids["hotfix"] = bad_callback.run_id
v3 = log_and_register("hotfix", "challenger")
promote(tracking, MODEL_NAME)
print(f"champion -> version {alias_version(tracking, MODEL_NAME, 'champion')}, history {alias_history(tracking, MODEL_NAME, 'champion')}")

# %% [markdown]
# The monitor that catches it scores a labelled live batch through the service (labels that came
# back for yesterday's traffic) and compares with the accuracy measured at the release gate. A
# drop of more than 10 points triggers `rollback`, which moves `champion` back to the previous
# version in the alias history; the service reloads and answers with it.
#
# **Predict, then run.** Three optimizer steps at lr 1e-4: will the hotfix's live accuracy fall
# more than 10 points below the release gate? After the rollback, which version answers?


# %%
def live_accuracy(test_client, data):
    reply = test_client.post("/predict/batch", json={"instances": data.features[:256].tolist()})
    assert reply.status_code == 200, reply.text
    predicted = np.array([p["class_index"] for p in reply.json()["predictions"]])
    return reply.json()["model_version"], float((predicted == data.labels[:256]).mean())


with TestClient(app) as test_client:
    version, acc = live_accuracy(test_client, holdout)
    print(f"serving version {version}: live accuracy {acc:.3f} (release gate measured {gate['challenger']:.3f})")
    assert version == v3
    if acc < gate["challenger"] - 0.10:
        move = rollback(tracking, MODEL_NAME)
        print(f"alarm: rolled back champion {move.previous} -> {move.current}")
        print("reload ->", test_client.post("/admin/reload").json())
    version_after, acc_after = live_accuracy(test_client, holdout)
    print(f"serving version {version_after}: live accuracy {acc_after:.3f}")
assert version_after == v2 and acc_after > acc + 0.10
print("champion history now:", alias_history(tracking, MODEL_NAME, "champion"))

# %% [markdown]
# Without the registry, the rollback would be "find the old weights file, hope it is the right
# one, copy it over the new one, restart". With it, it is one pointer move that any process can
# make, and the service reports the version it serves, so the fix is visible from the outside.
#
# ## 9. Clean up
#
# Nothing may outlive the notebook: no server thread, no load-test worker, no temporary files.

# %%
leftover = [t.name for t in threading.enumerate() if t.is_alive() and t.name.startswith(("uvicorn-", "load-"))]
assert not leftover, f"threads still running: {leftover}"
workdir.cleanup()
assert not root.exists()
print("no server or worker thread alive; temporary store removed")

# %% [markdown]
# ## 10. What you built
#
# - **Tracking**: three runs with their full configs, curves and best metrics in an MLflow store,
#   compared by a query instead of by memory; a param diff names what changed between two runs.
# - **Registry**: versions and aliases; a release gate on held-out data before `promote`; the
#   alias history that makes `rollback` one call from any process.
# - **Export**: an ONNX file with a dynamic batch axis, checked for parity at several batch sizes,
#   and the failure a frozen batch axis causes; eager vs onnxruntime latency.
# - **Serving**: a validated, versioned FastAPI service with health, readiness and Prometheus
#   metrics, serving PyTorch or the ONNX file behind the same API, called in process and over
#   HTTP, with p50/p99 latency and throughput under load, and no server left running.
# - **Monitoring**: PSI and KS per feature, checked by hand and against SciPy; a drifted feature
#   caught while the service kept answering 200.
# - **Rollback**: a bad release detected from a labelled live batch and undone by moving an alias.
#
# Checklist for a model you ship: is every run tracked with its full config? Is what you serve a
# registered version, and does every answer say which one? Does the exported file match the
# original at batch size 1 and at your largest batch? Does the service reject bad input with a
# message? Who looks at drift, and at what threshold? How long does a rollback take, and who can
# do it?
#
# **Beyond this notebook.** `docker/Dockerfile` runs the same service from the registry
# (`uvicorn --factory mlcraft.mlops.serving:app_from_env`); `benchmarks/` measures the ONNX and
# serving numbers with the server in its own process.
#
# ## Self-check
#
# 1. The same notebook gave 0.81 accuracy on Monday and 0.78 on Friday. What would have told you
#    why, and why log the whole config rather than the two settings you think matter?
#
#    <details><summary>Answer</summary>A tracking store with every run's full config as params:
#    the diff of the two runs' params names what changed (here it would have been the batch
#    size). Logging only the settings you think matter misses exactly the one that changed
#    without anybody deciding to change it (sections 2 and 3).</details>
#
# 2. What is the difference between a registered model version and an alias, and what do
#    <code>promote</code> and <code>rollback</code> change?
#
#    <details><summary>Answer</summary>A version is immutable; an alias is a movable pointer to
#    one version. <code>promote</code> moves <code>champion</code> to the challenger's version and
#    records the version it left in an alias history kept in the registry;
#    <code>rollback</code> moves it back to the previous one. No weights are copied, and any
#    process that can reach the store can do either (sections 4 and 8).</details>
#
# 3. An ONNX export matches PyTorch on the 16-row example it was exported with. Why is that not
#    enough?
#
#    <details><summary>Answer</summary>If the batch axis was not declared dynamic, the graph is
#    fixed to 16 rows and the first one-row request fails. Check parity on real rows at several
#    batch sizes, 1 included, and compare the largest logit difference with a stated tolerance
#    (section 5).</details>
#
# 4. Without request validation, what does the model do with a <code>NaN</code> feature, and
#    with 7 features instead of 8?
#
#    <details><summary>Answer</summary>The <code>NaN</code> goes through: the probabilities are
#    <code>NaN</code> and <code>argmax</code> returns class 0, which looks like an answer. The
#    short row fails deep inside PyTorch, which a service turns into a 500 with nothing useful
#    for the client. The request schema rejects both with a 422 and a message that names the
#    field (section 6).</details>
#
# 5. A service's mean latency is 2 ms. Why report p50 and p99, and why measure them with
#    several concurrent clients?
#
#    <details><summary>Answer</summary>The mean hides the slow requests that users notice; p99
#    shows the tail. With concurrent clients, requests wait for each other, so p50 and p99 rise,
#    and the p99 under load is what a service-level objective is written against
#    (section 6).</details>
#
# 6. The service answers every request with 200, and the PSI of one feature between the training
#    data and this week's requests is 0.4. What does that tell you, and what does it not?
#
#    <details><summary>Answer</summary>The inputs of that feature have shifted well past the 0.25
#    rule of thumb for a major shift; the status codes say nothing about it. It does not say how
#    much accuracy was lost: that needs labels. In the lesson, PSI passed 0.25 when accuracy had
#    lost only a point or two, so input monitoring warns early; confirm with the KS test, look
#    for the upstream change, and score a labelled batch (sections 7 and 8).</details>
#
# 7. Why does <code>drift_report</code> test each of 8 features at <code>alpha / 8</code>, and why
#    does it also require <code>D ≥ 0.05</code> before a KS rejection counts?
#
#    <details><summary>Answer</summary>Eight tests at <code>alpha</code> each would raise a false
#    alarm far more often than <code>alpha</code>; Bonferroni keeps the chance of any false alarm
#    at most <code>alpha</code>. On a very large window, KS rejects shifts too small to matter, so
#    a minimum effect size keeps those from being flagged (section 7).</details>
#
# ## Further reading
#
# - D. Sculley et al. (2015), "Hidden technical debt in machine learning systems", NeurIPS,
#   https://papers.nips.cc/paper/5656-hidden-technical-debt-in-machine-learning-systems
# - E. Breck, S. Cai, E. Nielsen, M. Salib, D. Sculley (2017), "The ML test score: a rubric for ML
#   production readiness and technical debt reduction", IEEE Big Data,
#   https://research.google/pubs/pub46555/
# - MLflow documentation: Tracking, https://mlflow.org/docs/latest/tracking.html; Model Registry
#   (versions and aliases), https://mlflow.org/docs/latest/model-registry.html
# - ONNX documentation, https://onnx.ai/onnx/; ONNX Runtime documentation,
#   https://onnxruntime.ai/docs/
# - PyTorch documentation: `torch.onnx` (the `torch.export`-based exporter and `dynamic_shapes`),
#   https://pytorch.org/docs/stable/onnx.html; `torch.export`,
#   https://pytorch.org/docs/stable/export.html
# - FastAPI documentation, https://fastapi.tiangolo.com/; testing with `TestClient`,
#   https://fastapi.tiangolo.com/tutorial/testing/
# - pydantic documentation, validators, https://docs.pydantic.dev/latest/concepts/validators/
# - Uvicorn documentation, https://www.uvicorn.org/
# - Prometheus, exposition formats, https://prometheus.io/docs/instrumenting/exposition_formats/
# - B. Beyer, C. Jones, J. Petoff, N. R. Murphy (eds., 2016), *Site Reliability Engineering*,
#   chapter "Service level objectives" (percentiles, not means),
#   https://sre.google/sre-book/service-level-objectives/
# - B. Yurdakul (2018), "Statistical properties of population stability index",
#   https://scholarworks.wmich.edu/dissertations/3208/
# - S. Rabanser, S. Günnemann, Z. C. Lipton (2019), "Failing loudly: an empirical study of
#   methods for detecting dataset shift" (per-feature KS tests with a Bonferroni correction),
#   NeurIPS, https://arxiv.org/abs/1810.11953
# - SciPy documentation, `scipy.stats.ks_2samp`,
#   https://docs.scipy.org/doc/scipy/reference/generated/scipy.stats.ks_2samp.html
# - S. Holm (1979), "A simple sequentially rejective multiple test procedure" (a step-down
#   alternative to the Bonferroni correction used here, with more power and the same guarantee),
#   *Scandinavian Journal of Statistics* 6(2), https://www.jstor.org/stable/4615733
#
# ---
#
# - **Previous lesson:** [06_data.ipynb](06_data.ipynb)
# - **Exercise:** [../exercises/07_mlops/07_mlops.ipynb](../exercises/07_mlops/07_mlops.ipynb).
#   Check it with `mlcraft check exercises/07_mlops/07_mlops.ipynb`.
