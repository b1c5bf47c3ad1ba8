# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · Training loops
#
# A training loop fits in ten lines. A loop you can trust with a week of GPU time does not,
# and every extra line is there because something went wrong without it. This lesson starts
# from the ten lines and adds one piece at a time, each time showing the failure it prevents:
#
# 1. the bare loop;
# 2. the checklist before training, applied;
# 3. `zero_grad`, and what forgetting it does;
# 4. evaluation done right: `model.eval()`, `torch.inference_mode()`, and back to train mode;
# 5. learning-rate schedules: warmup and cosine decay;
# 6. finding the learning rate: the LR range test;
# 7. gradient clipping;
# 8. gradient accumulation;
# 9. mixed precision (speed, memory, `GradScaler`, the full step) and activation checkpointing;
# 10. weight decay on the right parameters (parameter groups), and an EMA of the weights;
# 11. checkpoints that resume a run exactly;
# 12. the production loop: `mlcraft.training.Trainer` end to end;
# 13. feeding the loop: `DataLoader` throughput, and how to tell a starved step;
# 14. outgrowing one GPU: distributed data parallel (DDP);
# 15. the `torch.compile` switch: graph breaks and recompiles.
#
# Everything runs on the device you have, CPU included, on a synthetic data set generated here.
#
# **You will be able to…**
#
# - write a training loop and an evaluation function free of the quiet bugs: gradients never
#   cleared, evaluation in training mode (dropout, BatchNorm), a module's mode not restored;
# - pick a peak learning rate with an LR range test, build a warmup + cosine schedule checked
#   against PyTorch's schedulers, and read from the loss and gradient-norm curves when a run needs
#   warmup or gradient clipping;
# - set up the optimizer the way production code does: gradient accumulation that equals the
#   big-batch step, weight decay kept off biases, norms and embeddings, an EMA of the weights;
# - measure what mixed precision and activation checkpointing buy and cost (step time, saved
#   activation memory), call `unscale_` before clipping, and check that the cheaper run learns the
#   same model;
# - checkpoint everything a run needs (weights, optimizer, scheduler, scaler, data position, RNG
#   states) so that a resumed run matches an uninterrupted one bitwise on a CPU, and load
#   checkpoints with `weights_only=True`;
# - train with `mlcraft`'s `Trainer`, tell a data-starved loop from a compute-bound one and tune
#   the `DataLoader`, and say what DDP and `torch.compile` change and cost (graph breaks, recompiles).
#
# **Prerequisites**: lesson `00_orientation` (seeding, devices and autocast dtypes, loss scaling,
# deterministic mode, the checklist before training). Outside the course: PyTorch tensors,
# `nn.Module` and optimizers (SGD, Adam); backpropagation and cross-entropy at the level of an
# introductory deep-learning course; what dropout and batch normalisation do.
#
# **Time**: reading about 85 min; exercise `exercises/01_training_loops` 90–120 min; running the
# whole notebook took 29 s on a 2-core CPU (its cells, under `pytest --nbval-lax` with one intra-op
# thread and two notebooks at a time); GPU: not measured.


# %%
# Set-up: on Colab, install the course package; everywhere else this cell does nothing.
import sys

if "google.colab" in sys.modules:
    import subprocess

    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "mlcraft[course] @ git+https://github.com/mlcraft/mlcraft"], check=True)


# %%
import copy
import importlib
import logging
import math
import os
import pickle
import statistics
import subprocess
import tempfile
import textwrap
import time
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from torch import nn
from torch._dynamo.utils import counters
from torch.nn.functional import cosine_similarity, cross_entropy
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.checkpoint import checkpoint
from torch.utils.data import DataLoader, TensorDataset

from mlcraft.config import TrainingConfig
from mlcraft.training import (
    EarlyStopping,
    HistoryCallback,
    ModelEMA,
    Trainer,
    build_scheduler,
    load_checkpoint,
    lr_multiplier,
    lr_range_test,
    maybe_compile,
    param_groups,
    save_checkpoint,
)
from mlcraft.utils import (
    amp_dtype,
    best_device,
    configure_logging,
    needs_grad_scaler,
    seed_everything,
    set_deterministic,
)

configure_logging("WARNING")  # the Trainer logs structured metrics; section 11 shows what they look like
plt.rcParams.update({"axes.grid": True, "grid.alpha": 0.3})

device = best_device()
low_dtype = amp_dtype(device)
print(f"torch {torch.__version__}, device {device}, autocast dtype {low_dtype}, GradScaler needed: {needs_grad_scaler(low_dtype)}")


def sync():
    """Wait for queued GPU work (CUDA calls return before the kernel finishes); no-op elsewhere."""
    if device.type == "cuda":
        torch.cuda.synchronize()


# %% [markdown]
# One setting before we start. PyTorch splits each CPU operation across several threads
# ("intra-op" parallelism; `torch.get_num_threads()`, by default one per core). That pays off
# for big matrix products. The models in this lesson are small, and for them the split saves
# little while the threads must wait for each other at every operation, which gets expensive as
# soon as another program wants the same cores (two notebooks running at once is enough). Let's
# measure a small training step on the CPU both ways.
#
# **Predict, then run.** On this machine, will one thread be slower than the default thread count,
# about as fast, or faster?


# %%
def cpu_step_time(threads, steps=15):
    """Median time of a training step of a small MLP on the CPU, with `threads` intra-op threads."""
    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    m = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
    o = torch.optim.AdamW(m.parameters(), lr=1e-3)
    x, y = torch.randn(64, 64, generator=g), torch.randint(0, 10, (64,), generator=g)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        loss = cross_entropy(m(x), y)
        o.zero_grad(set_to_none=True)
        loss.backward()
        o.step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times[3:])  # skip the warm-up steps


default_threads = torch.get_num_threads()
thread_times = {n: [] for n in sorted({1, default_threads})}
for _ in range(2):  # alternate, so that a burst of load elsewhere hits both settings
    for n in thread_times:
        thread_times[n].append(cpu_step_time(n))
for n, ts in thread_times.items():
    print(f"{n} thread(s): {min(ts) * 1e3:.2f} ms per step (best of 2 medians)")
best_threads = min(thread_times, key=lambda n: min(thread_times[n]))  # keep whichever was faster here
torch.set_num_threads(best_threads)
print(f"from here on: torch.set_num_threads({best_threads}) (default on this machine: {default_threads})")


# %% [markdown]
# If the machine is otherwise idle, the two numbers are close: there is little to split. When
# something else is running, the multi-threaded step can be many times slower. One thread is
# the robust choice for this lesson, and for small-model CPU work in general; it is also why
# `torchrun` sets `OMP_NUM_THREADS=1` for each process it starts. On a GPU none of this
# matters: the CPU only queues the work.


# %% [markdown]
# ## The data
#
# Ten classes, each a Gaussian blob in 64 dimensions: fixed class centres, and points scattered
# around them with standard deviation 3, so the blobs overlap and the task is not trivial. The
# data comes from its own `torch.Generator`s, so it is identical whatever else the notebook seeds.
#
# Because we know how the data was made, we also know the best possible accuracy: with equal
# priors and the same spherical noise in every class, the optimal classifier assigns each point to
# its nearest centre. No model can beat that on average, which gives every later number a ceiling.
#
# **Predict, then run.** With noise of standard deviation 3 around centres drawn from a standard
# normal, will the best possible accuracy be close to 1.0, or well below it? And roughly how many
# examples of each class will the 4096 training points hold?


# %%
NUM_CLASSES, DIM = 10, 64
CENTRES = torch.randn(NUM_CLASSES, DIM, generator=torch.Generator().manual_seed(1234))


def make_blobs(n, seed, spread=3.0):
    """n labelled points from the ten blobs; `seed` draws the points, the centres stay fixed."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, NUM_CLASSES, (n,), generator=g)
    x = CENTRES[y] + spread * torch.randn(n, DIM, generator=g)
    return x, y


X_train, y_train = make_blobs(4096, seed=0)
X_val, y_val = make_blobs(1024, seed=1)
bayes_acc = (torch.cdist(X_val, CENTRES).argmin(dim=1) == y_val).float().mean().item()
print(f"train {tuple(X_train.shape)}, val {tuple(X_val.shape)}, class counts {torch.bincount(y_train).tolist()}")
print(f"best possible val accuracy (nearest centre): {bayes_acc:.3f}")

Xtr, ytr = X_train.to(device), y_train.to(device)  # small enough to live on the device
Xva, yva = X_val.to(device), y_val.to(device)


# %% [markdown]
# ## 1. The bare loop
#
# Sample a batch, compute the loss, clear the old gradients, backpropagate, step. That's it:


# %%
def make_mlp(hidden=128, depth=2):
    layers, width = [], DIM
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    return nn.Sequential(*layers, nn.Linear(width, NUM_CLASSES)).to(device)


seed_everything(0)
model = make_mlp()
opt = torch.optim.SGD(model.parameters(), lr=0.05)
losses = []
for _ in range(300):
    idx = torch.randint(0, len(Xtr), (64,), device=device)  # a random batch of 64
    loss = cross_entropy(model(Xtr[idx]), ytr[idx])
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    losses.append(loss.detach())  # .detach(), not .item(): no GPU sync every step
bare_losses = torch.stack(losses).float().cpu()

# %% [markdown]
# **Predict, then run.** Ten classes: near which value will the loss of the first 20 steps sit?
# After 300 steps, will the validation accuracy reach the ceiling printed above?


# %%
def smooth(values, window=20):
    """Trailing moving average (shorter at the start), to read a noisy curve."""
    csum = torch.cat([torch.zeros(1), values.double().cumsum(0)])
    idx = torch.arange(1, len(values) + 1)
    start = (idx - window).clamp(min=0)
    return ((csum[idx] - csum[start]) / (idx - start)).float()


with torch.no_grad():
    bare_acc = (model(Xva).argmax(dim=1) == yva).float().mean().item()

fig, ax = plt.subplots(figsize=(7, 3.5))
ax.plot(bare_losses, color="tab:blue", alpha=0.3, lw=0.8, label="per batch")
ax.plot(smooth(bare_losses), color="tab:blue", label="moving average (20 steps)")
ax.axhline(math.log(NUM_CLASSES), color="grey", ls="--", lw=0.8, label="ln(10): chance")
ax.set_xlabel("step")
ax.set_ylabel("training cross-entropy")
ax.set_title("The bare loop: SGD, lr 0.05, batch 64")
ax.legend()
plt.tight_layout()
plt.show()
print(f"loss {bare_losses[:20].mean():.3f} (first 20 steps) -> {bare_losses[-20:].mean():.3f} (last 20); val accuracy {bare_acc:.3f} (ceiling {bayes_acc:.3f})")


# %% [markdown]
# It learns. Two details already matter. `losses.append(loss.detach())` keeps the loss on the
# device: `loss.item()` would copy it to the host, and on a GPU that forces the CPU to wait for
# every queued kernel, every step. Convert once, at the end (or every N steps for logging). And
# the curve is noisy because each point is one batch of 64; the moving average is what you read.
#
# ## 2. The checklist before training, applied
#
# Lesson 00 ended with a checklist. Here it is on this model: shapes, dtypes and devices of one
# batch; the loss at initialisation; and a single batch overfitted.
#
# **Predict, then run.** What shape and dtype will the logits of a batch of 64 have? How many
# parameters does a 64 → 128 → 128 → 10 MLP with biases hold? (Work it out before the cell prints it.)


# %%
seed_everything(0)
model = make_mlp()
xb, yb = Xtr[:64], ytr[:64]
logits = model(xb)
param = next(model.parameters())
print(f"inputs   {tuple(xb.shape)} {xb.dtype} on {xb.device}, range {xb.min():.1f}..{xb.max():.1f}")
print(f"targets  {tuple(yb.shape)} {yb.dtype} on {yb.device}, labels {yb.min().item()}..{yb.max().item()}")
print(f"model    {sum(p.numel() for p in model.parameters()):,} parameters, {param.dtype} on {param.device}")
print(f"logits   {tuple(logits.shape)} {logits.dtype}")
assert logits.shape == (64, NUM_CLASSES) and yb.dtype == torch.long, "cross_entropy wants (N, C) logits and int64 labels"
assert xb.device == param.device, "data and model must be on the same device"

with torch.no_grad():
    init_loss = cross_entropy(model(Xtr), ytr).item()
print(f"loss at init {init_loss:.3f}, expected ln(10) = {math.log(NUM_CLASSES):.3f}")
torch.testing.assert_close(init_loss, math.log(NUM_CLASSES), rtol=0, atol=0.1, msg="loss at init should be ≈ ln(C)")

opt = torch.optim.Adam(model.parameters(), lr=1e-2)
for _ in range(100):
    loss = cross_entropy(model(xb), yb)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
print(f"one batch of 64, 100 Adam steps: loss {loss.item():.4f}")
torch.testing.assert_close(loss.item(), 0.0, rtol=0, atol=0.05, msg="the model must be able to memorise one batch")


# %% [markdown]
# All three pass: the wiring is right, so whatever happens next is about optimisation, not plumbing.
#
# ## 3. `zero_grad`: gradients add up
#
# `loss.backward()` does not *write* gradients into `p.grad`, it *adds* to them. That is a
# feature (section 8 builds on it), and a classic bug when you forget to clear them.
#
# **Predict, then run.** Two `backward()` calls on two batches, with no `zero_grad` in between. Is
# the resulting gradient `g_a + g_b`? Is its norm `|g_a| + |g_b|`, or less?


# %%
seed_everything(0)
model = make_mlp()
xa, ya, xb2, yb2 = Xtr[:64], ytr[:64], Xtr[64:128], ytr[64:128]
cross_entropy(model(xa), ya).backward()
g_a = model[0].weight.grad.clone()
model.zero_grad(set_to_none=True)
cross_entropy(model(xb2), yb2).backward()
g_b = model[0].weight.grad.clone()

model.zero_grad(set_to_none=True)
cross_entropy(model(xa), ya).backward()
cross_entropy(model(xb2), yb2).backward()  # no zero_grad in between
print(f"|g_a| = {g_a.norm():.4f}, |g_b| = {g_b.norm():.4f}, |grad after two backward calls| = {model[0].weight.grad.norm():.4f}")
torch.testing.assert_close(model[0].weight.grad, g_a + g_b, rtol=1e-5, atol=1e-7, msg="backward accumulates into .grad")


# %% [markdown]
# Now a whole run without `zero_grad`. The "gradient" the optimizer sees at step *t* is the sum
# of every gradient so far: it never forgets a stale direction, and its norm keeps growing. From
# here on the loops record the gradient norm too: `clip_grad_norm_` with `max_norm=inf` measures
# the global L2 norm of all gradients without changing them (section 7 uses it for real).
#
# **Predict, then run.** Without `zero_grad`, what will the gradient norm do over 300 steps, and
# will the loss end lower or higher than with it?


# %%
def train_mlp(model, opt, steps, *, lr_at=None, clip=None, zero_grad=True, batch_size=64, seed=0):
    """Train on random batches; return per-step loss, global gradient norm (before clipping) and lr.

    lr_at(step) multiplies each group's initial lr; clip is the max gradient norm (None: no clipping).
    """
    g = torch.Generator().manual_seed(seed)  # the batch order, independent of the model's init
    base_lrs = [group["lr"] for group in opt.param_groups]
    log = {"loss": [], "grad_norm": [], "lr": []}
    for step in range(steps):
        if lr_at is not None:
            for group, base in zip(opt.param_groups, base_lrs, strict=True):
                group["lr"] = base * lr_at(step)
        idx = torch.randint(0, len(Xtr), (batch_size,), generator=g).to(device)
        loss = cross_entropy(model(Xtr[idx]), ytr[idx])
        if zero_grad:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = nn.utils.clip_grad_norm_(model.parameters(), max_norm=clip if clip is not None else math.inf)
        opt.step()
        log["loss"].append(loss.detach())
        log["grad_norm"].append(norm.detach())
        log["lr"].append(torch.tensor(opt.param_groups[0]["lr"]))
    return {name: torch.stack(values).float().cpu() for name, values in log.items()}


runs = {}
for zero_grad in (True, False):
    seed_everything(0)
    model = make_mlp()
    runs[zero_grad] = train_mlp(model, torch.optim.SGD(model.parameters(), lr=0.05), 300, zero_grad=zero_grad)

fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
for zero_grad, color in ((True, "tab:blue"), (False, "tab:red")):
    label = "zero_grad every step" if zero_grad else "zero_grad forgotten"
    axes[0].plot(smooth(runs[zero_grad]["loss"]), color=color, label=label)
    axes[1].plot(runs[zero_grad]["grad_norm"], color=color, label=label)
axes[0].set_yscale("log")
axes[0].set_ylabel("training loss (moving avg, log)")
axes[0].set_title("Loss")
axes[1].set_yscale("log")
axes[1].set_ylabel("norm of .grad used by the step (log)")
axes[1].set_title("Gradient norm")
for ax in axes:
    ax.set_xlabel("step")
    ax.legend()
plt.tight_layout()
plt.show()
for zero_grad in (True, False):
    r = runs[zero_grad]
    print(f"zero_grad={zero_grad!s:5}: final loss {r['loss'][-20:].mean():8.3f}, grad norm at steps 10/100/299: "
          f"{r['grad_norm'][10]:.2f} / {r['grad_norm'][100]:.2f} / {r['grad_norm'][299]:.2f}")


# %% [markdown]
# Without `zero_grad`, plain SGD turns into something like momentum with no decay: the summed
# gradient keeps growing, each update is bigger than the last, and after a brief dip the loss
# goes back up to chance level and stays there. (The flat stretches in the norm are steps where
# the new gradients are almost zero: the oversized updates have killed most ReLUs.) The bug does
# not crash; it just trains badly, which is why it is worth knowing its signature: a gradient
# norm that climbs and never comes back down.
#
# `set_to_none=True` (the default in recent PyTorch) sets `p.grad = None` instead of filling it
# with zeros. The next `backward()` then *writes* the gradient instead of adding to a zero
# tensor: one memory pass less, and memory freed between steps.
#
# ## 4. Evaluation done right
#
# Two layer types behave differently in training and in evaluation:
#
# - `Dropout` zeroes a random fraction `p` of activations in training (and scales the rest by
#   `1 / (1 - p)`); in eval mode it does nothing.
# - `BatchNorm` normalises with the statistics *of the current batch* in training, and updates
#   running averages of them; in eval mode it uses the running averages.
#
# `model.eval()` switches both; `model.train()` switches back. Evaluation should also run under
# `torch.inference_mode()`, which records no autograd graph (no activations kept for a backward
# that never comes). Here is a correct evaluation function, next to the careless one.
#
# **Predict, then run.** The careless evaluation keeps the model in training mode. Will five
# repeats of it give five equal accuracies? On a validation set sorted by label, will its accuracy
# be near the correct one or near chance? And will the correct evaluation give the same number
# after the careless ones have run?


# %%
def evaluate(model, X, y, batch_size=256):
    """Mean loss and accuracy in eval mode, without autograd; every submodule's mode is restored after."""
    modes = [(module, module.training) for module in model.modules()]  # the mode of every submodule, not just the top one
    model.eval()
    try:
        with torch.inference_mode():
            loss_sum = torch.zeros((), device=X.device, dtype=torch.float64)
            correct = torch.zeros((), device=X.device, dtype=torch.long)
            for i in range(0, len(X), batch_size):
                out = model(X[i : i + batch_size])
                loss_sum += cross_entropy(out, y[i : i + batch_size], reduction="sum").double()  # summed in float64
                correct += (out.argmax(dim=1) == y[i : i + batch_size]).sum()
    finally:
        for module, training in modes:  # back to where we were, even if something raised
            module.training = training
    return (loss_sum / len(X)).item(), (correct / len(X)).item()


def careless_evaluate(model, X, y, batch_size=256):
    """The same, but the model stays in training mode."""
    with torch.no_grad():
        correct = sum((model(X[i : i + batch_size]).argmax(dim=1) == y[i : i + batch_size]).sum().item() for i in range(0, len(X), batch_size))
    return correct / len(X)


def make_bn_mlp(hidden=128, p=0.3):
    return nn.Sequential(
        nn.Linear(DIM, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Dropout(p),
        nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Dropout(p),
        nn.Linear(hidden, NUM_CLASSES),
    ).to(device)  # fmt: skip


seed_everything(0)
bn_model = make_bn_mlp()
train_mlp(bn_model, torch.optim.Adam(bn_model.parameters(), lr=1e-3), 300)

_, acc_right = evaluate(bn_model, Xva, yva)
_, acc_again = evaluate(bn_model, Xva, yva)
print(f"eval mode:             accuracy {acc_right:.4f}, again {acc_again:.4f}; model.training afterwards = {bn_model.training}")
torch.testing.assert_close(acc_right, acc_again, rtol=0, atol=0, msg="a correct evaluation is deterministic")

running_mean_before = bn_model[1].running_mean.clone()
acc_noisy = [careless_evaluate(bn_model, Xva, yva) for _ in range(5)]
print(f"train mode, 5 repeats: {', '.join(f'{a:.4f}' for a in acc_noisy)}")
by_class = torch.argsort(yva, stable=True)  # a validation file sorted by label, as files often are
acc_sorted = careless_evaluate(bn_model, Xva[by_class], yva[by_class])
print(f"train mode, val set sorted by label: accuracy {acc_sorted:.4f}")
drift = (bn_model[1].running_mean - running_mean_before).abs().max().item()
_, acc_after = evaluate(bn_model, Xva, yva)
print(f"the careless evaluations moved BatchNorm's running mean by up to {drift:.3f}; "
      f"correct accuracy is now {acc_after:.4f} (was {acc_right:.4f})")
assert len(set(acc_noisy)) > 1, "in train mode, dropout makes the evaluation random"
assert acc_sorted < acc_right - 0.2, "batch statistics of single-class batches should wreck the predictions"

with torch.inference_mode():
    out = bn_model(Xva[:4])
print(f"under inference_mode: requires_grad={out.requires_grad}, grad_fn={out.grad_fn}; without it: grad_fn={bn_model(Xva[:4]).grad_fn.name()}")


# %%
fig, ax = plt.subplots(figsize=(7, 3.5))
labels = ["eval()", "train mode\n(5 repeats)", "train mode,\nval sorted by label", "eval() again,\nafter the above"]
ax.bar(labels[0], acc_right, color="tab:blue")
ax.bar(labels[1], statistics.mean(acc_noisy), yerr=[[statistics.mean(acc_noisy) - min(acc_noisy)], [max(acc_noisy) - statistics.mean(acc_noisy)]], color="tab:orange", capsize=6)
ax.bar(labels[2], acc_sorted, color="tab:red")
ax.bar(labels[3], acc_after, color="tab:purple")
for patch, value in zip(ax.patches, [acc_right, statistics.mean(acc_noisy), acc_sorted, acc_after], strict=True):
    ax.text(patch.get_x() + patch.get_width() / 2, value / 2, f"{value:.3f}", ha="center", color="white", fontsize=9)
ax.axhline(bayes_acc, color="grey", ls="--", lw=0.8, label=f"best possible ({bayes_acc:.3f})")
ax.axhline(1 / NUM_CLASSES, color="grey", ls=":", lw=0.8, label="chance (0.1)")
ax.set_ylabel("validation accuracy")
ax.set_title("The same trained model, evaluated four ways")
ax.set_ylim(0, 1.05)
ax.legend(loc="upper right", ncol=2, fontsize=8)
plt.tight_layout()
plt.show()


# %% [markdown]
# Forgetting `model.eval()` costs you three ways, all visible above:
#
# 1. **Noise.** Dropout is still on, so the same model on the same data scores differently each
#    time, and slightly worse.
# 2. **Wrong answers that depend on the batch.** BatchNorm normalises with the batch's own
#    statistics. On a shuffled batch of 256 those are close to the running ones; on a batch
#    that holds one class only, the features are centred on *that class's* mean, the very signal
#    the classifier needs is subtracted away, and accuracy falls towards chance.
# 3. **The evaluation changed the model.** In training mode every forward pass updates BatchNorm's
#    running statistics, so after the careless evaluations even the correct one gives a different
#    number: you evaluated on, and partly fit to, the validation set.
#
# The opposite bug is just as quiet: evaluate, forget `model.train()`, and the rest of training
# runs without dropout and with frozen BatchNorm statistics. `evaluate` above saves the mode of
# **every submodule** and restores each one in a `finally` block. `model.train(was_training)`
# would not be enough: it sets every submodule to the same mode, so a model in train mode with a
# BatchNorm deliberately frozen in eval mode (common when fine-tuning) would come back with that
# BatchNorm unfrozen. `inference_mode` is `no_grad` plus a promise that the outputs
# never enter autograd, which lets PyTorch skip some bookkeeping: no graph, no saved activations.
#
# ## 5. Learning-rate schedules
#
# The learning rate is rarely constant in a production run. The usual shape is a short **linear
# warmup** from almost zero to the peak, then a **cosine decay** towards a floor.
# `mlcraft.training.lr_multiplier` gives the factor applied to the peak lr at each optimizer step.
#
# **Predict, then run.** 100 warmup steps out of 1000, no floor: what is the multiplier at step 0,
# at step 99, at step 550 (the middle of the decay), and at the last step?


# %%
total, warm = 1000, 100
sched_steps = range(total)
curves = {
    "warmup + cosine": [lr_multiplier(s, warmup_steps=warm, total_steps=total) for s in sched_steps],
    "warmup + cosine, floor 0.1": [lr_multiplier(s, warmup_steps=warm, total_steps=total, min_lr_ratio=0.1) for s in sched_steps],
    "warmup + constant": [lr_multiplier(s, warmup_steps=warm, total_steps=total, schedule="constant") for s in sched_steps],
}
fig, ax = plt.subplots(figsize=(7, 3.5))
for (name, values), style in zip(curves.items(), ("-", "--", ":"), strict=True):
    ax.plot(values, ls=style, lw=1.8, label=name)
ax.axvline(warm, color="grey", lw=0.8)
ax.text(warm + 10, 0.05, "end of warmup", fontsize=8, color="grey")
ax.set_xlabel("optimizer step")
ax.set_ylabel("lr / peak lr")
ax.set_title(f"lr_multiplier: {warm} warmup steps, {total} steps in total")
ax.legend()
plt.tight_layout()
plt.show()
print("first steps:", [round(v, 3) for v in curves["warmup + cosine"][:3]], " step 99:", curves["warmup + cosine"][99],
      " step 550:", round(curves["warmup + cosine"][550], 4), " last:", f"{curves['warmup + cosine'][-1]:.2e}")


# %% [markdown]
# The first step already runs at `1/warm` of the peak (a factor of 0 would waste a step), step
# `warm - 1` runs at the peak, the cosine is half-way down at the middle of the decay, and it
# ends at the floor. Don't trust a schedule you wrote yourself: compare it with PyTorch's own
# schedulers. A linear ramp from `1/w` over `w - 1` steps followed by a cosine over `total - w`
# steps must give exactly the same learning rates, and so must `build_scheduler`, which wraps
# `lr_multiplier` in a `LambdaLR` for use with any optimizer.
#
# **Predict, then run.** Will the largest difference from PyTorch's `SequentialLR` be exactly 0?
# And from `build_scheduler`?


# %%
def lr_trace(make_scheduler, base_lr=3e-4, steps=total):
    """The lr at each of `steps` optimizer steps under the scheduler built by make_scheduler(opt)."""
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=base_lr)
    scheduler = make_scheduler(opt)
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    return torch.tensor(lrs, dtype=torch.float64)


ours = 3e-4 * torch.tensor(curves["warmup + cosine"], dtype=torch.float64)
torch_ref = lr_trace(lambda opt: torch.optim.lr_scheduler.SequentialLR(
    opt,
    [
        torch.optim.lr_scheduler.LinearLR(opt, start_factor=1 / warm, end_factor=1.0, total_iters=warm - 1),
        torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total - warm),
    ],
    milestones=[warm],
))  # fmt: skip
ours_sched = lr_trace(lambda opt: build_scheduler(opt, warmup_steps=warm, total_steps=total))
print(f"max |lr_multiplier - SequentialLR(LinearLR, CosineAnnealingLR)| = {(ours - torch_ref).abs().max():.1e}")
print(f"max |lr_multiplier - build_scheduler|                         = {(ours - ours_sched).abs().max():.1e}")
torch.testing.assert_close(ours, torch_ref, rtol=1e-9, atol=1e-15, msg="warmup-cosine must match PyTorch's schedulers")
torch.testing.assert_close(ours, ours_sched, rtol=1e-12, atol=0, msg="build_scheduler must apply lr_multiplier")


# %% [markdown]
# The tiny difference from `SequentialLR` is rounding: `CosineAnnealingLR` updates the lr
# recursively from the previous value, `lr_multiplier` uses the closed form.
#
# **Why warm up?** At initialisation the gradients are large and their directions change fast.
# Adam makes it worse: its second-moment estimate starts from a handful of samples, so its
# per-parameter step sizes are unreliable for the first steps. A high peak lr applied right away
# can throw the weights somewhere the run never recovers from. Here is a 4-layer MLP trained with
# Adam at lr 3e-2, with and without 40 warmup steps (cosine decay in both).
#
# **Predict, then run.** Which run has the higher worst loss in the first 50 steps, and which
# ends with the better validation accuracy?


# %%
warmup_runs = {}
for w in (0, 40):
    seed_everything(0)
    model = make_mlp(hidden=256, depth=4)
    schedule = lambda s, w=w: lr_multiplier(s, warmup_steps=w, total_steps=200)  # noqa: E731
    warmup_runs[w] = train_mlp(model, torch.optim.Adam(model.parameters(), lr=3e-2), 200, lr_at=schedule)
    warmup_runs[w]["val_acc"] = evaluate(model, Xva, yva)[1]

fig, axes = plt.subplots(1, 2, figsize=(11, 3.5), gridspec_kw={"width_ratios": [2, 1]})
for w, color in ((0, "tab:red"), (40, "tab:blue")):
    r = warmup_runs[w]
    label = f"{w} warmup steps (val acc {r['val_acc']:.3f})"
    axes[0].plot(r["loss"], color=color, alpha=0.25, lw=0.8)
    axes[0].plot(smooth(r["loss"], 10), color=color, label=label)
    axes[1].plot(r["lr"], color=color, label=f"{w} warmup steps")
axes[0].set_yscale("log")
axes[0].set_ylabel("training loss (log)")
axes[0].set_title("Adam, peak lr 3e-2, 4-layer MLP")
axes[1].set_ylabel("learning rate")
axes[1].set_title("Schedules")
for ax in axes:
    ax.set_xlabel("step")
    ax.legend(fontsize=8)
plt.tight_layout()
plt.show()
for w in (0, 40):
    r = warmup_runs[w]
    print(f"warmup {w:2}: worst loss in the first 50 steps {r['loss'][:50].max():6.2f}, last 20 steps {r['loss'][-20:].mean():.3f}, val accuracy {r['val_acc']:.3f}")


# %% [markdown]
# Without warmup, the loss shoots far above its starting value in the first few dozen steps and
# the run ends noticeably worse. With warmup it never exceeds its starting value. Warmup lets you
# use a higher peak lr than the start of training could bear; cosine decay then lowers the lr so
# the final steps settle into a minimum instead of bouncing around it.
#
# ## 6. Finding the learning rate: the LR range test
#
# Every run so far used a peak lr picked in advance. On a new model or data set, the quickest
# principled starting point is Leslie Smith's **learning-rate range test** (popularised as
# fastai's `lr_find`): train for about a hundred batches while the lr grows exponentially from
# far too small to far too large, and record the loss. First nothing happens (the steps are too
# small to matter), then the loss falls, then the steps become too large and it turns up: often it
# explodes, but it can also stay up without exploding, as it does below. A good peak lr lies on
# the falling stretch, below the point where the loss is lowest. It costs a hundred steps instead
# of a sweep of short runs, so it is worth running before any other tuning.
#
# The test is the loop you already know, with three details:
#
# - step `i` of `n` runs at `start · (end / start)^(i / (n − 1))`: equal steps in `log(lr)`, the
#   sequence `ExponentialLR` produces;
# - batch losses are noisy, so they are smoothed with an exponential moving average
#   `a_i = β·a_(i−1) + (1 − β)·loss_i`, reported with Adam's bias correction `a_i / (1 − β^(i+1))`
#   so that the first values are not pulled towards the starting zero. Unrolled, the corrected
#   value is simply the mean of the losses so far, weighted by `β^age`;
# - it stops once the smoothed loss exceeds 4× its best so far, and afterwards the model and the
#   optimizer must be put back exactly as they were: the test has just trained them into the ground.
#
# `mlcraft.training.lr_range_test` does all of it and suggests a tenth of the lr at the smoothed
# minimum. Below, two independent computations check it, on the lesson's MLP with AdamW, 100 steps
# from 1e-6 to 10: PyTorch's `ExponentialLR`, which gets the lr sequence by multiplying by a
# constant factor at every step instead of evaluating the formula, and the weighted mean above,
# written out in float64, for the smoothing. A forward hook on each ReLU also counts, at every
# step, the units that output 0 for the whole batch: units that are "dead" on that batch.
#
# **Predict, then run.** Adam's usual default lr is 1e-3. Will the suggestion land within a factor
# of 3 of it, or orders of magnitude away? Will the test stop early because the loss explodes, or
# run all 100 steps up to lr 10? After the test, will the model's weights be the ones it started
# with?


# %%
START_LR, END_LR, RANGE_STEPS, BETA = 1e-6, 10.0, 100, 0.9
seed_everything(0)
model = make_mlp()
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
weights_before = copy.deepcopy(model.state_dict())
range_loader = DataLoader(TensorDataset(X_train, y_train), batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0))
dead_share = {1: [], 2: []}  # per hidden layer and step: share of ReLUs that output 0 for every example of the batch
hooks = [
    model[2 * layer - 1].register_forward_hook(lambda module, inputs, out, layer=layer: dead_share[layer].append((out > 0).sum(dim=0).eq(0).float().mean().item()))
    for layer in dead_share
]  # model = Linear, ReLU, Linear, ReLU, Linear: the ReLUs are modules 1 and 3
finder = lr_range_test(model, opt, range_loader, cross_entropy, start_lr=START_LR, end_lr=END_LR, num_steps=RANGE_STEPS, smooth=BETA)
for hook in hooks:
    hook.remove()


def smoothed_by_hand(losses, beta):
    """The bias-corrected moving average as what it is, in float64: at each step, the mean of the
    losses so far weighted by beta**age (no recursion)."""
    x = torch.tensor(losses, dtype=torch.float64)
    out = []
    for i in range(len(x)):
        weights = beta ** torch.arange(i, -1, -1, dtype=torch.float64)  # age i, ..., 1, 0
        out.append((weights * x[: i + 1]).sum() / weights.sum())
    return torch.stack(out)


steps_taken = len(finder.lrs)
lrs_exponential = lr_trace(lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=(END_LR / START_LR) ** (1 / (RANGE_STEPS - 1))), base_lr=START_LR, steps=steps_taken)
found_lrs = torch.tensor(finder.lrs, dtype=torch.float64)
torch.testing.assert_close(found_lrs, lrs_exponential, rtol=1e-10, atol=0, msg="lr sequence = ExponentialLR")
torch.testing.assert_close(torch.tensor(finder.smoothed, dtype=torch.float64), smoothed_by_hand(finder.losses, BETA), rtol=1e-10, atol=0, msg="smoothing = the weighted mean")
restored = all(torch.equal(value, weights_before[key]) for key, value in model.state_dict().items())
assert restored and opt.param_groups[0]["lr"] == 1e-3 and not opt.state, "the test must leave the model and the optimizer as they were"
print(f"{steps_taken} steps, lr {finder.lrs[0]:.0e} -> {finder.lrs[-1]:.1e}, stopped on divergence: {finder.diverged}")
print(f"max relative difference from ExponentialLR {((found_lrs - lrs_exponential).abs() / lrs_exponential).max():.1e}; weights and optimizer restored: {restored}")
print(f"smoothed loss lowest at lr {finder.min_loss_lr:.2e}; suggested (a tenth of it) {finder.suggested_lr:.2e}; steepest descent at {finder.steepest_lr:.2e}")

lowest = min(finder.smoothed)
highest_after = max(finder.smoothed[finder.smoothed.index(lowest) :])
late_loss = statistics.mean(finder.losses[-10:])
late_dead = {layer: statistics.mean(shares[-10:]) for layer, shares in dead_share.items()}
print(f"after its minimum {lowest:.2f} the smoothed loss peaks at {highest_after:.2f}, below the stop level 4 × {lowest:.2f} = {4 * lowest:.2f}")
print(f"last 10 steps: batch loss {late_loss:.2f} (chance: ln 10 = {math.log(NUM_CLASSES):.2f}); dead ReLUs in hidden layer 1: {late_dead[1]:.0%}, layer 2: {late_dead[2]:.0%}")
assert not finder.diverged and steps_taken == RANGE_STEPS and highest_after < 4 * lowest, "on this model the loss never passes the stop level"
assert late_dead[2] > 0.9 and late_dead[1] < 0.1, "at the top of the range the second hidden layer is dead, the first alive"
assert abs(late_loss - math.log(NUM_CLASSES)) < 1.0, "with a dead layer the loss sits near chance"


# %% [markdown]
# A suggestion is a hypothesis: check it with short runs. Below, the curve, then 200 steps of
# AdamW at a constant lr of a tenth of the suggestion, the suggestion, and ten times it.
#
# **Predict, then run.** Which of the three short runs ends with the lowest validation loss?


# %%
brief_runs = {}
for factor in (0.1, 1.0, 10.0):
    seed_everything(0)
    model = make_mlp()
    brief_runs[factor] = train_mlp(model, torch.optim.AdamW(model.parameters(), lr=factor * finder.suggested_lr), 200)
    brief_runs[factor]["val"] = evaluate(model, Xva, yva)

fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
loss_top = 1.15 * max(finder.smoothed)  # the smoothed curves in full; the raw spikes above are clipped
axes[0].plot(finder.lrs, finder.losses, color="tab:blue", alpha=0.3, lw=0.8, label=f"batch loss (clipped at {loss_top:.1f}; highest {max(finder.losses):.1f})")
axes[0].plot(finder.lrs, finder.smoothed, color="tab:blue", label=f"smoothed, β = {BETA}")
axes[0].plot(finder.lrs, smoothed_by_hand(finder.losses, 0.98), color="grey", ls="--", lw=1, label="smoothed, β = 0.98")
axes[0].axvline(finder.min_loss_lr, color="tab:red", ls="--", lw=1, label=f"smoothed minimum {finder.min_loss_lr:.1e}")
axes[0].axvline(finder.suggested_lr, color="tab:green", lw=1.5, label=f"suggested (minimum / 10) {finder.suggested_lr:.1e}")
axes[0].axvline(finder.steepest_lr, color="tab:purple", ls=":", lw=1.5, label=f"steepest descent {finder.steepest_lr:.1e}")
axes[0].axhline(math.log(NUM_CLASSES), color="grey", lw=0.8, label="ln 10: chance")
axes[0].set_xscale("log")
axes[0].set_ylim(0, loss_top)
axes[0].set_xlabel("learning rate (log)")
axes[0].set_ylabel("training loss")
axes[0].set_title("LR range test: AdamW, 100 batches")
dead_axis = axes[0].twinx()
for layer, color in ((1, "tab:brown"), (2, "black")):
    dead_axis.plot(finder.lrs, dead_share[layer], color=color, ls=":", lw=1.5, label=f"dead ReLUs, hidden layer {layer} (right axis)")
dead_axis.set_ylim(0, 1.05)
dead_axis.set_ylabel("share of dead ReLUs in the batch")
dead_axis.grid(False)
dead_axis.legend(fontsize=7, loc="lower left")
for (factor, r), color in zip(brief_runs.items(), ("tab:orange", "tab:green", "tab:red"), strict=True):
    axes[1].plot(smooth(r["loss"]), color=color, label=f"lr {factor:g} x suggested: val loss {r['val'][0]:.3f}, acc {r['val'][1]:.3f}")
axes[1].set_xlabel("step")
axes[1].set_ylabel("training loss (moving avg)")
axes[1].set_title("200 steps at a constant lr")
axes[0].legend(fontsize=7, loc="upper left")
axes[1].legend(fontsize=7)
plt.tight_layout()
plt.show()
for factor, r in brief_runs.items():
    print(f"lr {factor * finder.suggested_lr:.1e} ({factor:g} x suggested): val loss {r['val'][0]:.3f}, accuracy {r['val'][1]:.3f}")
assert brief_runs[1.0]["val"][0] < min(brief_runs[0.1]["val"][0], brief_runs[10.0]["val"][0]), "the suggestion should beat a tenth and ten times it"


# %% [markdown]
# First, how the test ended. The smoothed loss bottoms out, climbs, and then comes back down
# without ever passing four times its minimum, so the stop rule never fires: `stopped on
# divergence: False`, and all 100 steps ran up to lr 10. The dotted lines say why the loss did not
# explode. Adam moves every weight by about the lr at every step, whatever the size of its
# gradient; once those steps are large, they push the second hidden layer's pre-activations below
# zero for every input, and its ReLUs die one after another until none fires at all (the first
# layer, fed the raw inputs, stays alive). From then on the output is the last layer's bias alone,
# the same for every input, no gradient reaches the hidden layers to revive them, and the batch
# loss sits a little above chance, `ln 10`, the best that a guess ignoring the input can do. The
# network is broken, but its loss looks calm, and a stop rule that watches for a growing loss does
# not see it. So read the curve, not only `diverged`; the useful part, the falling stretch and its
# minimum, is the same either way.
#
# The suggestion sits at the low end of the falling stretch and trains best of the three. Ten
# times more is where the raw losses of the test already jump around: that run learns fastest at
# first, then stalls at a higher loss. A tenth of it is safe but slow. The grey curve is why the lesson passed `smooth=0.9` rather than fastai's
# default 0.98: an average with memory `1/(1 − β)` = 50 steps, over a test of only 100, flattens the
# dip and shifts its minimum to the right. With a longer test (300 steps or more), 0.98 is fine.
# The steepest-descent point is the other common rule; it is more aggressive, and on a noisy curve
# it can land on an early wiggle, which is why `mlcraft` suggests the minimum / 10.
#
# Three caveats. The result belongs to this model, batch size and optimizer: change any of them and
# rerun. It probes the first hundred steps at a constant lr; for a warmup + cosine schedule, treat
# it as the order of magnitude of the peak and refine with two or three short runs. And the test
# changes the global RNG state (batches and dropout draws), like any training.
#
# ## 7. Gradient clipping
#
# Sometimes a single batch produces a huge gradient: an outlier, a sharp region of the loss
# surface, a learning rate at the edge of stability. One such step can move the weights so far
# that the run is lost. `torch.nn.utils.clip_grad_norm_(params, max_norm)` computes the global L2
# norm of all gradients and, when it exceeds `max_norm`, rescales **all** gradients by
# `max_norm / norm`: the direction is kept, only the step length is capped. It returns the norm
# *before* clipping, which is exactly what you want to log.
#
# **Predict, then run.** After `clip_grad_norm_(max_norm=0.5)` on a fresh model's gradient, what
# will the norm be, and the cosine between the gradient before and after?


# %%
seed_everything(0)
model = make_mlp()
cross_entropy(model(Xtr[:64]), ytr[:64]).backward()
g_before = [p.grad.clone() for p in model.parameters()]
norm_before = nn.utils.clip_grad_norm_(model.parameters(), max_norm=0.5)
norm_after = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in model.parameters()]))
cosine = cosine_similarity(torch.cat([g.flatten() for g in g_before]), torch.cat([p.grad.flatten() for p in model.parameters()]), dim=0)
print(f"norm returned {norm_before:.4f}, norm after clipping {norm_after:.4f}, cosine(before, after) = {cosine:.6f}")
torch.testing.assert_close(norm_after.item(), 0.5, rtol=1e-4, atol=0, msg="clipped to max_norm")
torch.testing.assert_close(cosine.item(), 1.0, rtol=0, atol=1e-5, msg="clipping keeps the direction")


# %% [markdown]
# Now a run that goes wrong: SGD with momentum 0.9 at lr 0.3 on the 4-layer MLP, constant lr,
# with and without `clip_grad_norm_(max_norm=1.0)`.
#
# **Predict, then run.** Which of the two runs learns? In the clipped run, will a few steps reach
# the clip, or most of them?


# %%
clip_runs = {}
for clip in (None, 1.0):
    seed_everything(0)
    model = make_mlp(hidden=256, depth=4)
    clip_runs[clip] = train_mlp(model, torch.optim.SGD(model.parameters(), lr=0.3, momentum=0.9), 300, clip=clip)
    clip_runs[clip]["val_acc"] = evaluate(model, Xva, yva)[1]

fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
for clip, color in ((None, "tab:red"), (1.0, "tab:blue")):
    r = clip_runs[clip]
    label = "no clipping" if clip is None else f"clip_grad_norm_({clip})"
    axes[0].plot(r["loss"], color=color, lw=1, label=f"{label}: val acc {r['val_acc']:.3f}")
    axes[1].plot(r["grad_norm"], color=color, lw=1, label=label)
axes[1].axhline(1.0, color="grey", ls="--", lw=0.8, label="max_norm")
axes[0].set_yscale("log")
axes[0].set_ylabel("training loss (log)")
axes[0].set_title("SGD + momentum, lr 0.3")
axes[1].set_yscale("log")
axes[1].set_ylabel("gradient norm before clipping (log)")
axes[1].set_title("Global gradient norm")
for ax in axes:
    ax.set_xlabel("step")
    ax.legend(fontsize=8)
plt.tight_layout()
plt.show()
for clip in (None, 1.0):
    r = clip_runs[clip]
    print(f"clip={clip!s:4}: peak loss {r['loss'].max():6.2f}, peak grad norm {r['grad_norm'].max():7.1f}, "
          f"last 20 steps {r['loss'][-20:].mean():.3f}, val accuracy {r['val_acc']:.3f}, steps clipped {(r['grad_norm'] > 1.0).float().mean():.0%}")


# %% [markdown]
# Without clipping the run never gets going: the loss bounces around ln(10), jumping whenever
# the gradient norm does, and the largest spike (a norm above 100) finishes it off. After that
# the gradient norm collapses by more than an order of magnitude: most ReLUs have died (their
# inputs are negative for every example, so no gradient flows back) and the network predicts
# one class. With clipping, every step has a bounded length, the spikes cannot throw the weights
# away, and the run learns. Plot the gradient norm in every run you care about: a rising or
# spiky norm is the earliest warning you will get.
#
# Look at the last column too. At lr 0.3 almost every step is clipped: the clip is what keeps
# *every* step short, so here it works much like a lower learning rate that also caps the spikes.
# In a healthy run only a small fraction of steps should reach the clip; if nearly all do, lower
# the learning rate rather than lean on the clip. `max_norm=1.0` is a common default; the
# `Trainer` below records `grad_norm` for every step so you can check which case you are in.
#
# ## 8. Gradient accumulation
#
# Suppose the batch you want (say 32) does not fit in memory, but 8 does. Because `backward()`
# adds into `.grad`, you can run 4 micro-batches of 8, call `backward()` on each, and step once.
# The catch is the scale: `cross_entropy` averages over its batch, so each micro-batch gradient
# is a mean over 8 samples, and their sum is 4 times the mean over 32. Divide each micro-batch
# loss by the number of micro-batches. Checked in float64, on the CPU, so that only the
# arithmetic differs.
#
# **Predict, then run.** With the division, how far apart will the parameters of the big-batch
# step and the accumulated step be: about 1e-16, 1e-6 or 1e-2? Without it, how much farther will
# each parameter move?


# %%
def one_sgd_step(micro_batches, divide):
    """One SGD step from a fixed float64 model, over the given (x, y) micro-batches; returns the model."""
    seed_everything(0)
    m = nn.Sequential(nn.Linear(DIM, 64), nn.ReLU(), nn.Linear(64, NUM_CLASSES)).double()
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    opt.zero_grad(set_to_none=True)
    for x, y in micro_batches:
        loss = cross_entropy(m(x), y)
        (loss / len(micro_batches) if divide else loss).backward()  # grads add up across micro-batches
    opt.step()
    return m


x32, y32 = X_train[:32].double(), y_train[:32]
full = one_sgd_step([(x32, y32)], divide=True)
accumulated = one_sgd_step([(x32[i : i + 8], y32[i : i + 8]) for i in range(0, 32, 8)], divide=True)
undivided = one_sgd_step([(x32[i : i + 8], y32[i : i + 8]) for i in range(0, 32, 8)], divide=False)


def max_param_diff(a, b):
    return max((p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters(), strict=True))


print(f"1 batch of 32 vs 4 x 8, loss / 4:     max |parameter difference| = {max_param_diff(full, accumulated):.1e}")
print(f"1 batch of 32 vs 4 x 8, no division:  max |parameter difference| = {max_param_diff(full, undivided):.1e}")
for p, q in zip(full.parameters(), accumulated.parameters(), strict=True):
    torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-14, msg="accumulated step must equal the big-batch step")
seed_everything(0)
start = nn.Sequential(nn.Linear(DIM, 64), nn.ReLU(), nn.Linear(64, NUM_CLASSES)).double()  # the common starting point
for p0, p_full, p_undiv in zip(start.parameters(), full.parameters(), undivided.parameters(), strict=True):
    torch.testing.assert_close(p_undiv - p0, 4 * (p_full - p0), rtol=1e-9, atol=1e-14, msg="no division: a 4x larger step")
print("without the division, every parameter moved exactly 4x as far: the lr was silently multiplied by 4")


# %% [markdown]
# Equal to float64 rounding with the division; a 4× larger step without it. With SGD that is a
# 4× learning rate. With Adam the effect is subtler (Adam divides by the gradient's own scale),
# but weight decay, gradient clipping and `eps` all see the wrong magnitudes.
#
# Two caveats. The equivalence needs equal-sized micro-batches and a mean-reduced loss; a short
# last micro-batch should get a smaller weight. And it does not hold with BatchNorm, whose
# statistics are computed per micro-batch of 8, not over 32. In distributed training, only the
# last micro-batch of a group needs to synchronise gradients (section 14).
#
# ## 9. Mixed precision
#
# Lesson 00 showed what autocast does to dtypes. Here is what it buys in a training step. First,
# speed, on a matmul-heavy MLP. The two settings are timed in alternation, each step ends with a
# synchronisation, and we report the median, which ignores the odd slow step.
#
# **Predict, then run.** On your device, will autocast make the step faster than fp32, or slower?


# %%
width, big_batch = (4096, 2048) if device.type == "cuda" else (1024, 512)
seed_everything(0)
big = nn.Sequential(
    nn.Linear(256, width), nn.GELU(), nn.Linear(width, width), nn.GELU(), nn.Linear(width, width), nn.GELU(), nn.Linear(width, NUM_CLASSES)
).to(device)  # fmt: skip
big_opt = torch.optim.SGD(big.parameters(), lr=1e-4)
x_big = torch.randn(big_batch, 256, device=device)
y_big = torch.randint(0, NUM_CLASSES, (big_batch,), device=device)


def timed_step(use_amp):
    t0 = time.perf_counter()
    with torch.autocast(device_type=device.type, dtype=low_dtype, enabled=use_amp):
        loss = cross_entropy(big(x_big), y_big)
    big_opt.zero_grad(set_to_none=True)
    loss.backward()
    big_opt.step()
    sync()
    return time.perf_counter() - t0


for use_amp in (False, True, False, True):  # warm-up: first calls allocate and pick kernels
    timed_step(use_amp)
step_times = {False: [], True: []}
for _ in range(12):
    for use_amp in (False, True):
        step_times[use_amp].append(timed_step(use_amp))
t32, t16 = statistics.median(step_times[False]), statistics.median(step_times[True])
where = f"cuda ({torch.cuda.get_device_name()})" if device.type == "cuda" else f"cpu, {torch.get_num_threads()} thread(s)"
print(f"{where}, MLP {width} wide, batch {big_batch}: fp32 {t32 * 1e3:.1f} ms/step, autocast {low_dtype} {t16 * 1e3:.1f} ms/step")
print(f"speed-up from autocast: {t32 / t16:.2f}x")


# %% [markdown]
# What to expect depends entirely on the hardware:
#
# - **NVIDIA GPUs** have tensor cores (fp16 from Volta on, bf16 from Ampere on) that run 16-bit
#   matmuls many times faster than fp32; on a matmul-bound model 2–3× per step is common.
# - **CPUs** run bf16 fast only if they have the instructions for it: AVX512-BF16 or AMX (recent
#   Intel Xeons, some AMD Zen 4/5). There, a speed-up like the one above is typical. On a CPU
#   without them (most laptops), bf16 is emulated by converting to fp32 and back, and autocast is
#   often *slower* than fp32. If your ratio is below 1, that is the likely reason, and it is
#   not a bug. (The other one: another job competing for the cores while the cell ran. Timings
#   on a shared machine are noisy; run the cell again.)
# - **Small models** gain little anywhere: the step is dominated by launching operations and
#   by element-wise work, which autocast does not speed up much, plus the casts it adds.
#
# Then memory. During the forward pass, autograd keeps tensors for the backward pass (inputs of
# matmuls, activations). A `saved_tensors_hooks` pair lets us see every one of them as it is
# saved; we add up their bytes, skipping the parameters themselves (saved by reference: no new
# memory). This is a real measurement, and it works on every device.
#
# **Predict, then run.** The batch grows 16-fold from the smallest to the largest size. How will
# the saved bytes grow? And what share of fp32's activation bytes per example will autocast save?


# %%
param_ptrs = {p.data_ptr() for p in big.parameters()}


def saved_bytes(use_amp, batch):
    """Bytes of the new tensors autograd saves for backward in one forward pass of `big`."""
    total = 0

    def pack(t):
        nonlocal total
        if t.data_ptr() not in param_ptrs:
            total += t.numel() * t.element_size()
        return t

    x = torch.randn(batch, 256, device=device)
    y = torch.randint(0, NUM_CLASSES, (batch,), device=device)
    hooks = torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t)  # pack on save, unpack on use
    with hooks, torch.autocast(device_type=device.type, dtype=low_dtype, enabled=use_amp):
        loss = cross_entropy(big(x), y)
    del loss  # frees the graph without running backward
    return total


weight_bytes = sum(p.numel() * p.element_size() for p in big.parameters())
batches = (big_batch // 4, big_batch, big_batch * 4)
saved = {use_amp: [saved_bytes(use_amp, b) for b in batches] for use_amp in (False, True)}
print(f"parameters: {weight_bytes / 2**20:.1f} MiB in fp32")
print(f"{'batch':>6}{'fp32 saved':>13}{'autocast saved':>16}{'ratio':>8}")
for i, b in enumerate(batches):
    print(f"{b:>6}{saved[False][i] / 2**20:>10.1f} MiB{saved[True][i] / 2**20:>12.1f} MiB{saved[True][i] / saved[False][i]:>8.2f}")

# saved = fixed + per_example * batch: fit the two parts from the smallest and largest batch
per_example = {k: (v[-1] - v[0]) / (batches[-1] - batches[0]) for k, v in saved.items()}
fixed = {k: v[0] - per_example[k] * batches[0] for k, v in saved.items()}
act_ratio = per_example[True] / per_example[False]
print(f"activations per example: fp32 {per_example[False] / 2**10:.1f} KiB, autocast {per_example[True] / 2**10:.1f} KiB, ratio {act_ratio:.3f}")
linears = [m for m in big if isinstance(m, nn.Linear)]
weight_copies = sum(m.weight.numel() * 2 for m in linears[1:])  # 2 bytes each; see the text for linears[0]
print(f"fixed part: fp32 {fixed[False] / 2**20:.2f} MiB, autocast {fixed[True] / 2**20:.2f} MiB (16-bit weight copies: {weight_copies / 2**20:.2f} MiB)")
torch.testing.assert_close(act_ratio, 0.5, rtol=0, atol=0.02, msg="16-bit activations take half the bytes")
torch.testing.assert_close(fixed[True], float(weight_copies), rtol=0.02, atol=0, msg="autocast keeps 16-bit copies of the weights")

if device.type == "cuda":
    for use_amp in (False, True):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        timed_step(use_amp)
        print(f"peak memory allocated during a training step, autocast={use_amp}: {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")


# %% [markdown]
# The saved bytes grow linearly with the batch size, so two batch sizes split them into a part
# per example (the activations) and a fixed part. The activations are halved, exactly as 16 bits
# instead of 32 predict (a few small tensors, such as the logits fed to the loss, stay fp32 on
# purpose). The fixed part is new: autocast casts each weight matrix to 16 bits for its matmul
# and keeps that copy for the backward pass. (The first layer's is not kept: its input is the
# data, which needs no gradient, and the weight is only needed to compute that gradient.) At a
# small batch the copies can cost more than the activations save, and the total *grows*; at a
# large batch they are negligible. Activation memory
# grows with batch size and sequence length; that is where mixed precision lets you fit a batch
# twice as large. The parameters, their gradients and the optimizer state stay fp32: autocast
# never touches them (this is the "mixed" in mixed precision).
#
# ### Activation checkpointing: memory for compute
#
# Mixed precision halves the activations. When that is not enough (a deeper network, longer
# sequences, a batch you do not want to shrink), **activation checkpointing** (Chen et al., 2016,
# "sublinear memory cost") keeps only the *input* of each checkpointed block during the forward
# pass and drops everything inside it. During the backward pass it runs the block's forward again,
# from that input, to get the activations back, one block at a time. Memory for a block's
# activations drops to one tensor; the price is a second forward pass of every checkpointed
# block. Large language models are routinely trained this way.
#
# By hand, it is one line in the model's `forward`:
# `x = checkpoint(block, x, use_reentrant=False)` instead of `x = block(x)`. (Pass
# `use_reentrant=False`, the variant the PyTorch docs recommend: it handles keyword arguments,
# inputs that need no gradient and nesting; the reentrant one is kept for old code.) We measure with
# the same `saved_tensors_hooks` counter as above, on a stack of 8 residual feed-forward blocks
# (the MLP half of a transformer layer, dropout included), and check the gradients against the plain model.
#
# **Predict, then run.** Each block saves its input and three 4×-wide tensors: the GELU's input,
# the dropout mask and the dropout output (the second layer's input). With checkpointing, about
# what fraction of the saved bytes remains: a half, a quarter, or less? How much longer will a training step take: twice as
# long, or about a third longer? And will the gradients equal the plain model's bit for bit,
# although dropout draws random masks?


# %%
class FeedForwardBlock(nn.Module):
    """x + W2 · dropout(GELU(W1 · x)): the feed-forward half of a transformer layer."""

    def __init__(self, width, p=0.1):
        super().__init__()
        self.ff = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Dropout(p), nn.Linear(4 * width, width))

    def forward(self, x):
        return x + self.ff(x)  # (B, W) -> (B, W)


class DeepStack(nn.Module):
    def __init__(self, width=128, depth=8, checkpointed=False):
        super().__init__()
        self.blocks = nn.ModuleList(FeedForwardBlock(width) for _ in range(depth))
        self.head = nn.Linear(width, NUM_CLASSES)
        self.checkpointed = checkpointed

    def forward(self, x):
        for block in self.blocks:
            # checkpointed: keep x only; the block's forward runs again during backward
            x = checkpoint(block, x, use_reentrant=False) if self.checkpointed else block(x)
        return self.head(x)


def saved_bytes_of(model, x, y):
    """Bytes autograd keeps for backward in one forward pass of `model` (parameters excluded)."""
    params = {p.data_ptr() for p in model.parameters()}
    total = 0

    def pack(t):
        nonlocal total
        if t.data_ptr() not in params:
            total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = cross_entropy(model(x), y)
    del loss
    return total


def stack_step(model, x, y, seed=0):
    """Forward + backward from a fixed RNG state; returns the time, the output and the gradients."""
    torch.manual_seed(seed)  # the same dropout masks for both models
    model.zero_grad(set_to_none=True)
    t0 = time.perf_counter()
    out = model(x)
    cross_entropy(out, y).backward()
    sync()
    return time.perf_counter() - t0, out.detach(), [p.grad.clone() for p in model.parameters()]


seed_everything(0)
plain_stack = DeepStack().to(device)
ckpt_stack = copy.deepcopy(plain_stack)
ckpt_stack.checkpointed = True  # same weights, checkpointed blocks
x_stack = torch.randn(256, 128, device=device)
y_stack = torch.randint(0, NUM_CLASSES, (256,), device=device)

plain_bytes, ckpt_bytes = saved_bytes_of(plain_stack, x_stack, y_stack), saved_bytes_of(ckpt_stack, x_stack, y_stack)
block_input_bytes = x_stack.numel() * x_stack.element_size()
_, out_plain, grads_plain = stack_step(plain_stack, x_stack, y_stack)
_, out_ckpt, grads_ckpt = stack_step(ckpt_stack, x_stack, y_stack)
exact = device.type == "cpu"  # on a GPU, allow for kernels that are not bitwise reproducible
tol = {"rtol": 0, "atol": 0} if exact else {"rtol": 1e-5, "atol": 1e-6}
torch.testing.assert_close(out_ckpt, out_plain, **tol, msg="checkpointing must not change the output")
for g_ckpt, g_plain in zip(grads_ckpt, grads_plain, strict=True):
    torch.testing.assert_close(g_ckpt, g_plain, **tol, msg="checkpointing must not change the gradients")

stack_times = {False: [], True: []}
for _ in range(5):  # alternate, as in the speed measurement above
    for checkpointed, m in ((False, plain_stack), (True, ckpt_stack)):
        stack_times[checkpointed].append(stack_step(m, x_stack, y_stack)[0])
with torch.no_grad():
    forward_times = []
    for _ in range(5):
        t0 = time.perf_counter()
        plain_stack(x_stack)
        sync()
        forward_times.append(time.perf_counter() - t0)
t_plain, t_ckpt, t_fwd = (statistics.median(ts[1:]) for ts in (stack_times[False], stack_times[True], forward_times))
print(f"saved for backward: plain {plain_bytes / 2**20:.2f} MiB, checkpointed {ckpt_bytes / 2**20:.2f} MiB "
      f"({ckpt_bytes / plain_bytes:.1%}; the 9 block and head inputs alone are {9 * block_input_bytes / 2**20:.2f} MiB)")
print(f"forward + backward: plain {t_plain * 1e3:.1f} ms, checkpointed {t_ckpt * 1e3:.1f} ms (+{t_ckpt / t_plain - 1:.0%}); "
      f"one forward pass alone {t_fwd * 1e3:.1f} ms")
print(f"outputs and gradients equal {'bitwise' if exact else 'to the tolerance'}: {tol}")
assert ckpt_bytes < 0.15 * plain_bytes, "checkpointing should keep little more than the block inputs"


# %% [markdown]
# With checkpointing, autograd keeps little more than the inputs of the 8 blocks and of the head,
# about a tenth of the plain model's bytes here; inside the blocks, the wide activations were dropped.
# (During the backward pass the activations of one block at a time come back, so the true peak
# adds one block's worth.) The step is slower by roughly one extra forward pass: compare the
# increase with the forward time on the last line. The gradients are
# bitwise equal, dropout included, because `checkpoint` saves the RNG state before the block and
# restores it for the recomputation (`preserve_rng_state=True`, the default), so the recomputed
# masks are the same.
#
# In practice: checkpoint the repeated blocks (transformer layers), never the cheap head; trade
# with the batch size, since the memory freed can hold a larger batch, which often wins back the
# time. `torch.utils.checkpoint.checkpoint_sequential` splits an `nn.Sequential` into segments,
# and recent PyTorch versions can recompute only selected cheap operations (selective
# checkpointing). On a GPU, check with `torch.cuda.max_memory_allocated()` as in the cell above.
#
# ### GradScaler, and why `unscale_` comes before clipping
#
# With **fp16** (older GPUs), small gradients underflow to zero (lesson 00, section 4). The
# remedy is loss scaling: `scaler.scale(loss)` multiplies the loss by a large factor `S`
# (65536 to start with), so every gradient is `S` times larger and stays in range. `scaler.step(opt)`
# divides the gradients by `S` before the update, and skips the step if any gradient is `inf` or
# `NaN` (then `scaler.update()` halves `S`; after 2000 clean steps it doubles it). With bf16 none
# of this is needed: `GradScaler(enabled=False)` makes every call a pass-through, so one code
# path serves both.
#
# The trap: between `backward()` and `step()` the gradients are still multiplied by `S`. Clip
# them there and you measure a norm 65536 times too large and clip every step to almost nothing.
# `scaler.unscale_(opt)` divides them back first. Here it is with the scaler switched on, on any
# device (we skip autocast to isolate the scaling).
#
# **Predict, then run.** With `init_scale=2**16`, how many times the true gradient norm will the
# norm be after `scaler.scale(loss).backward()`, and after `unscale_`?


# %%
seed_everything(0)
model = make_mlp()
opt = torch.optim.SGD(model.parameters(), lr=0.1)


def grad_norm(m):
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in m.parameters()])).item()


cross_entropy(model(Xtr[:64]), ytr[:64]).backward()
true_norm = grad_norm(model)
opt.zero_grad(set_to_none=True)

scaler = torch.amp.GradScaler(device.type, init_scale=2.0**16, enabled=True)
scaler.scale(cross_entropy(model(Xtr[:64]), ytr[:64])).backward()
scaled_norm = grad_norm(model)
scaler.unscale_(opt)
unscaled_norm = grad_norm(model)
print(f"true gradient norm {true_norm:.4f}; after scaler.scale(loss).backward(): {scaled_norm:.1f}; after unscale_: {unscaled_norm:.4f}")
torch.testing.assert_close(scaled_norm, true_norm * 2**16, rtol=1e-5, atol=0, msg="scaled gradients are S times larger")
torch.testing.assert_close(unscaled_norm, true_norm, rtol=1e-5, atol=0, msg="unscale_ restores the true gradients")
clip_factor = 1.0 / scaled_norm
print(f"clip_grad_norm_(1.0) before unscale_ would multiply the gradients by {clip_factor:.1e} instead of {min(1.0, 1.0 / true_norm):.2f}")


# %% [markdown]
# ### The full step
#
# Everything so far in one function: autocast for the forward pass, the scaled backward pass,
# accumulation over micro-batches (dividing the loss), `unscale_` then clipping, the scaler's
# step and update, the schedule, and `zero_grad`. This is the step the `Trainer` below runs.
# Let's train the 4-layer MLP with it, once in fp32 and once with autocast, from the same start.
#
# **Predict, then run.** Will the two runs give bitwise-equal losses? Will their validation
# accuracies differ by more than a couple of points?


# %%
def full_step_run(use_amp, steps=150, accumulation=2, micro_batch=32, peak_lr=3e-3, warmup=15, clip=1.0):
    seed_everything(0)
    model = make_mlp(hidden=256, depth=4)
    opt = torch.optim.AdamW(model.parameters(), lr=peak_lr)
    scheduler = build_scheduler(opt, warmup_steps=warmup, total_steps=steps)
    scaler = torch.amp.GradScaler(device.type, enabled=use_amp and low_dtype == torch.float16)  # fp16 only
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)  # first: never step on gradients left over from elsewhere
        step_loss = 0.0
        for _ in range(accumulation):
            idx = torch.randint(0, len(Xtr), (micro_batch,), generator=g).to(device)
            with torch.autocast(device_type=device.type, dtype=low_dtype, enabled=use_amp):
                loss = cross_entropy(model(Xtr[idx]), ytr[idx])  # computed in fp32 under autocast
            scaler.scale(loss / accumulation).backward()
            step_loss += loss.detach() / accumulation
        scaler.unscale_(opt)  # real gradient units from here on
        nn.utils.clip_grad_norm_(model.parameters(), clip)
        scaler.step(opt)  # skips the update if a gradient is inf/NaN
        scaler.update()
        scheduler.step()
        losses.append(step_loss)
    return torch.stack(losses).float().cpu(), evaluate(model, Xva, yva)


fp32_losses, (fp32_val_loss, fp32_acc) = full_step_run(use_amp=False)
amp_losses, (amp_val_loss, amp_acc) = full_step_run(use_amp=True)

fig, ax = plt.subplots(figsize=(7, 3.5))
ax.plot(smooth(fp32_losses, 10), color="tab:blue", label=f"fp32: val loss {fp32_val_loss:.3f}, acc {fp32_acc:.3f}")
ax.plot(smooth(amp_losses, 10), color="tab:orange", ls="--", label=f"autocast {str(low_dtype).removeprefix('torch.')}: val loss {amp_val_loss:.3f}, acc {amp_acc:.3f}")
ax.set_yscale("log")
ax.set_xlabel("optimizer step (2 micro-batches of 32 each)")
ax.set_ylabel("training loss (moving avg, log)")
ax.set_title("The full step: AMP, accumulation, clipping, warmup + cosine")
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()
print(f"val accuracy fp32 {fp32_acc:.3f}, autocast {amp_acc:.3f}, difference {abs(fp32_acc - amp_acc):.3f}")
torch.testing.assert_close(amp_acc, fp32_acc, rtol=0, atol=0.03, msg="mixed precision should not change what the model learns")


# %% [markdown]
# The curves track each other; the runs differ only by rounding, which changes individual steps
# but not where training goes. That is the property to check whenever you switch precision: same
# loss curve within noise, same validation metrics.
#
# ## 10. Weight decay on the right parameters, and an average of the weights
#
# Two small additions to the optimizer that production training code almost always has.
#
# ### Parameter groups
#
# AdamW applies weight decay *decoupled* from the gradient (Loshchilov & Hutter): every step
# multiplies each parameter by `1 − lr·wd`, pulling it towards zero. For a weight matrix that is
# regularisation: it limits how large the weights grow. For a bias, or the scale and shift of a
# LayerNorm or BatchNorm, zero is not a simpler model, just a different one: decaying a norm's
# scale shrinks that layer's output, which the next layers then have to undo, and these vectors
# hold too few numbers to overfit with anyway. Embedding tables are a case of their own: their
# gradient touches only the rows of tokens in the batch, but decay shrinks every row at every
# step, so rare tokens fade between their appearances. Codebases agree on the first part: BERT
# (by name: `LayerNorm` and `bias`), nanoGPT, timm and Hugging Face's `Trainer` decay matrices and
# convolution kernels and leave biases and normalisation parameters alone. They disagree on
# embeddings: minGPT keeps them out of decay; BERT and nanoGPT ("all weight tensors in matmuls +
# embeddings decay") decay them. `mlcraft` keeps them out by default; `decay_embeddings=True` gives
# the other choice. `AdamW(model.parameters(), weight_decay=0.01)` decays everything, and so does
# the `Trainer`'s default optimizer. Optimizers accept **parameter groups** instead: a list of
# dicts, each with its own hyper-parameters.
#
# Two details make this more than "`ndim >= 2` gets decay". An embedding table is 2-D. And tied
# weights (an output layer sharing the embedding matrix, as in GPT-2) are one tensor held by two
# modules: it must be listed exactly once, since PyTorch refuses a tensor in two groups and steps it twice if it
# appears twice in one. `mlcraft.training.param_groups`
# decides by module type and dimension, counts a shared tensor once (decayed only if every module
# holding it would decay it), skips frozen parameters and reports the names. Below, a small
# tagger with all of these, listed by hand first.
#
# **Predict, then run.** One AdamW step with lr 0.1, weight decay 0.5 and every gradient set to
# zero: Adam's own update is then `0 / (0 + eps) = 0`, so only the decay acts. By what factor does a
# decayed matrix shrink, and how far does a LayerNorm weight move? Which names would the common
# shortcut "decay whatever has `weight` in its name" decay, and will AdamW accept the tied matrix
# listed twice in one group?


# %%
class TinyTagger(nn.Module):
    """Tokens -> logits over the vocabulary at each position: an embedding, a LayerNorm, a layer
    with BatchNorm, and an output layer tied to the embedding (GPT-2 style)."""

    def __init__(self, vocab=50, dim=16):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.norm = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, dim)
        self.bn = nn.BatchNorm1d(dim)
        self.out = nn.Linear(dim, vocab, bias=False)
        self.out.weight = self.embed.weight  # tied: one tensor, two modules

    def forward(self, tokens):
        h = self.norm(self.embed(tokens))  # (B, T, D)
        h = self.bn(self.fc(h).transpose(1, 2)).transpose(1, 2).relu()  # BatchNorm1d wants (B, D, T)
        return self.out(h)  # (B, T, vocab)


seed_everything(0)
tagger = TinyTagger().to(device)
by_hand = {
    "decay": ["fc.weight"],
    "no decay": ["embed.weight", "norm.weight", "norm.bias", "fc.bias", "bn.weight", "bn.bias"],  # embed.weight is out.weight too
}
groups = param_groups(tagger, weight_decay=0.5)
for group in groups:
    print(f"weight_decay {group['weight_decay']}: {sum(p.numel() for p in group['params']):4} numbers in {group['param_names']}")
assert [sorted(g["param_names"]) for g in groups] == [sorted(by_hand["decay"]), sorted(by_hand["no decay"])], "groups differ from the hand listing"
placed = [p for g in groups for p in g["params"]]
assert len(placed) == len({id(p) for p in placed}) == len(list(tagger.parameters())), "every parameter exactly once, the tied one too"
print(f"the shortcut 'weight' in name would decay: {[name for name, _ in tagger.named_parameters() if 'weight' in name]}")

lr, wd = 0.1, 0.5
opt = torch.optim.AdamW(groups, lr=lr)
before = {name: p.detach().clone() for name, p in tagger.named_parameters()}
for p in tagger.parameters():
    p.grad = torch.zeros_like(p)  # zero gradients: only the decay acts
opt.step()
for name, p in tagger.named_parameters():
    decayed = name in by_hand["decay"]
    expected = before[name] * (1 - lr * wd) if decayed else before[name]
    torch.testing.assert_close(p.detach(), expected, rtol=1e-6, atol=0, msg=f"{name}: decayed={decayed}")
    change = (p.detach() - before[name]).abs().max().item()
    print(f"{name:13} {'decay' if decayed else 'no decay':9} largest change {change:.4f} (largest |value| before: {before[name].abs().max().item():.4f})")

shortcut = [p for name, p in tagger.named_parameters(remove_duplicate=False) if "weight" in name]  # embed.weight and out.weight: one tensor
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    opt_shortcut = torch.optim.AdamW([{"params": shortcut, "weight_decay": wd}], lr=lr)
tied_before = tagger.embed.weight.detach().clone()
opt_shortcut.step()  # the gradients are still zero: only the decay acts
torch.testing.assert_close(tagger.embed.weight.detach(), tied_before * (1 - lr * wd) ** 2, rtol=1e-6, atol=0, msg="decayed twice")
try:
    torch.optim.AdamW([{"params": [tagger.embed.weight]}, {"params": [tagger.out.weight]}])
    refused = "accepted"
except ValueError as err:
    refused = f"ValueError: {err}"
duplicate_warnings = [str(w.message) for w in caught if "duplicate parameters" in str(w.message)]
assert len(duplicate_warnings) == 1, "one group with a duplicate: a warning, not an error (torch 2.x)"
print(f"\nthe tied matrix twice in one group: warned ({duplicate_warnings[0].split(';')[0]}), then decayed twice: factor {(1 - lr * wd) ** 2:.4f}")
print(f"the tied matrix in two groups: {refused}")
assert refused.startswith("ValueError"), "a tensor in two different groups is refused"


# %% [markdown]
# The decayed matrix shrank by exactly `lr·wd = 5%`; every other tensor stayed put, bit for bit.
# The name shortcut would have decayed the LayerNorm and BatchNorm scales and the embedding,
# and it would list the tied matrix twice under its two names if you built groups from
# `named_modules()`. PyTorch refuses a tensor in two *different* groups, but twice in the *same*
# group it only warns (and says that this will become an error), then updates that tensor twice
# per step: twice the decay, and two Adam steps. To use the groups with the `Trainer`, pass the optimizer yourself:
# `Trainer(model, config, ..., optimizer=torch.optim.AdamW(param_groups(model, config.weight_decay), lr=config.lr))`;
# the schedule scales each group's lr alike.
#
# ### An exponential moving average of the weights
#
# With a high learning rate or small batches, the weights at step `t` jitter around a good region
# instead of settling in it. The average of the recent weights sits nearer the middle of that
# region (Polyak averaging), and evaluating the average often beats the last weights, at the cost
# of one extra copy of the weights and one `lerp` per step: no extra forward or backward pass.
# timm trains its ImageNet models with it, and diffusion models and self-supervised "teacher"
# networks (mean teacher, BYOL, DINO) depend on it.
#
# By hand it is two lines: copy the weights once, then after every optimizer step
# `ema = decay · ema + (1 − decay) · w`, that is `ema.lerp_(w, 1 − decay)`. The average remembers
# about `1 / (1 − decay)` steps, and starting from a copy of the initial weights it needs about
# that many to forget them. `ModelEMA(..., warmup=True)` applies Adam's bias correction instead,
# so that after `t` updates it is the weighted mean of the weights seen so far. Buffers such as
# BatchNorm's running statistics are copied from the model (`buffers="copy"`; `"average"` averages
# them too). Below, on a deliberately noisy run (SGD with momentum at lr 0.1, batch 64), the
# by-hand EMA, `mlcraft.training.ModelEMA` and PyTorch's
# `AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay))` run side by side, and we track
# the validation loss of the raw weights and of the averages.
#
# **Predict, then run.** Over the last evaluations, will the EMA's validation loss be below the raw
# weights', about equal, or above? Which of the two EMAs looks worse during the first 100 steps?


# %%
EMA_DECAY, EMA_STEPS = 0.98, 400
seed_everything(0)
model = make_mlp()
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
ema_by_hand = [p.detach().clone() for p in model.parameters()]
ema = ModelEMA(model, EMA_DECAY)  # starts from a copy of the initial weights
ema_warm = ModelEMA(model, EMA_DECAY, warmup=True)
reference = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(EMA_DECAY))
reference.update_parameters(model)  # AveragedModel's first update copies; ModelEMA copied at construction
g = torch.Generator().manual_seed(0)
ema_curves = {"raw weights": [], f"EMA, decay {EMA_DECAY}": [], f"EMA, decay {EMA_DECAY}, warmup": []}
eval_steps = []
for step in range(1, EMA_STEPS + 1):
    idx = torch.randint(0, len(Xtr), (64,), generator=g).to(device)
    loss = cross_entropy(model(Xtr[idx]), ytr[idx])
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    with torch.no_grad():
        for e, p in zip(ema_by_hand, model.parameters(), strict=True):
            e.lerp_(p, 1 - EMA_DECAY)  # by hand
    ema.update(model)
    ema_warm.update(model)
    reference.update_parameters(model)
    if step % 20 == 0:
        eval_steps.append(step)
        for curve, m in zip(ema_curves.values(), (model, ema.module, ema_warm.module), strict=True):
            curve.append(evaluate(m, Xva, yva)[0])

for mine, hand, theirs in zip(ema.module.parameters(), ema_by_hand, reference.module.parameters(), strict=True):
    torch.testing.assert_close(mine, hand, rtol=1e-6, atol=1e-7, msg="ModelEMA = the by-hand EMA")
    torch.testing.assert_close(mine, theirs, rtol=1e-6, atol=1e-7, msg="ModelEMA = AveragedModel with get_ema_multi_avg_fn")
diff_torch = max((a - b).abs().max().item() for a, b in zip(ema.module.parameters(), reference.module.parameters(), strict=True))
with ema_warm.swapped_into(model):  # evaluate through the training model; a torch.compile or DDP wrapper works too (unwrapped inside)
    swapped = evaluate(model, Xva, yva)
assert swapped == evaluate(ema_warm.module, Xva, yva), "swapping the EMA in evaluates the EMA"

fig, ax = plt.subplots(figsize=(7, 3.5))
for (name, values), color in zip(ema_curves.items(), ("tab:red", "tab:blue", "tab:green"), strict=True):
    ax.plot(eval_steps, values, "o-", ms=3, color=color, label=name)
ax.set_xlabel("step")
ax.set_ylabel("validation loss")
ax.set_title(f"SGD + momentum, lr 0.1: raw weights vs their EMA (decay {EMA_DECAY})")
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()
last = {name: statistics.mean(values[-5:]) for name, values in ema_curves.items()}
print(f"{EMA_STEPS} updates: max |ModelEMA - AveragedModel| = {diff_torch:.1e}; the swapped-in model scores {swapped[0]:.3f}")
for name, value in last.items():
    print(f"{name:27} mean val loss over the last 5 evaluations {value:.3f}")
assert last[f"EMA, decay {EMA_DECAY}, warmup"] < last["raw weights"], "on a noisy run the EMA should evaluate better"


# %% [markdown]
# The three implementations agree (on a CPU the largest difference printed is 0: they compute
# the same `lerp`). The raw weights' validation loss bounces from one evaluation to the next; the EMA's is lower and smoother, for
# the price of a copy of the weights. Without warmup the EMA spends its first ~100
# steps dragging the random initial weights along (their share is `0.98^t`: still 13% at step 100);
# with `decay=0.999`, common in long runs, that start-up lasts thousands of steps, so use warmup or
# start the EMA late. The average is not free of judgement: with a well-tuned schedule that decays
# the lr, the last weights are already "averaged" by the small final steps and the gain shrinks.
# Evaluate both and keep the better one. The EMA is state, so it goes into the checkpoint too.
#
# ## 11. Checkpoints and exact resume
#
# Long jobs get killed: preempted spot instances, time limits, out-of-memory errors, a machine
# that reboots. A checkpoint lets the run carry on where it stopped, and a *good* checkpoint makes
# the continued run indistinguishable from one that was never interrupted. That takes more than
# the weights:
#
# | state | why it is needed |
# |---|---|
# | model weights | obviously |
# | optimizer state (Adam's moment estimates, step counts) | without it Adam restarts cold: a loss spike |
# | scheduler state | or the lr jumps back to the start of warmup |
# | `GradScaler` state (current scale) | or fp16 re-learns the scale, skipping steps |
# | position in the data: epoch and batches consumed | or the resumed run repeats or skips data |
# | every RNG state (Python, NumPy, torch CPU and CUDA) | dropout masks, augmentation, shuffling |
# | early-stopping state and best metric | or patience restarts |
# | the EMA of the weights, if you keep one (`ema.state_dict()`) | or the average restarts from the current weights |
# | the config | to refuse resuming with different settings |
#
# From here on we use `mlcraft.training.Trainer`, which packages the step from section 9 with the
# bookkeeping around it. Its `fit(until_step=k)` pauses after `k` steps: our stand-in for the
# kill. Then a **fresh** model and a **fresh** Trainer load the checkpoint and finish the run. For
# this one run we turn the log level to `INFO`, to see the Trainer's structured log lines (they go
# to stderr).
#
# **Predict, then run.** The run is planned for 60 steps and killed after 25, with a checkpoint
# every 20 steps. Which step does `last.pt` hold, and how many steps does the resumed run train?


# %%
train_set, val_set = TensorDataset(X_train, y_train), TensorDataset(X_val, y_val)
on_cpu = device.type == "cpu"
resume_kwargs = dict(
    lr=3e-3, batch_size=64, max_steps=60, warmup_steps=10, grad_clip_norm=1.0, amp=True, seed=0,
    deterministic=on_cpu,  # bitwise-reproducible kernels; on a GPU we compare with a tolerance instead
    progress=False, log_every=20,
)  # fmt: skip
KILL_AT = 25


def new_trainer(**overrides):
    seed_everything(123)  # a different init each time: the checkpoint must restore the weights
    return Trainer(make_mlp(hidden=256, depth=4), TrainingConfig(**resume_kwargs, **overrides), train_set, cross_entropy)


uninterrupted = [h["loss"] for h in new_trainer().fit()]

with tempfile.TemporaryDirectory() as tmp:
    ckpt_dir = Path(tmp)
    configure_logging("INFO")
    first = new_trainer(checkpoint_dir=ckpt_dir, checkpoint_every=20)
    before_kill = [h["loss"] for h in first.fit(until_step=KILL_AT)]  # writes last.pt when it stops
    configure_logging("WARNING")
    del first  # the process dies; only the files remain
    files = sorted(p.name for p in ckpt_dir.iterdir())
    payload = load_checkpoint(ckpt_dir / "last.pt")  # what the checkpoint holds (weights_only=True inside)

    second = new_trainer(checkpoint_dir=ckpt_dir, checkpoint_every=20)
    second.load_checkpoint(ckpt_dir / "last.pt")
    after_resume = [h["loss"] for h in second.fit()]

set_deterministic(False)  # deterministic mode is process-wide; switch it off for the rest of the lesson
resumed = before_kill + after_resume
print(f"files in the checkpoint folder after the kill: {files}")
print(f"checkpoint keys: {sorted(payload)}")
print(f"saved position: {payload['state']}")
print(f"saved RNG states: {sorted(payload['rng'])}; optimizer state for {len(payload['optimizer']['state'])} parameter tensors")
print(f"steps: uninterrupted {len(uninterrupted)}, resumed {len(before_kill)} + {len(after_resume)}")


# %% [markdown]
# **Predict, then run.** A fresh model with other initial weights, a fresh Trainer, and the
# checkpoint. On a CPU in deterministic mode, what will the largest difference between the
# resumed and the uninterrupted losses be?


# %%
fig, ax = plt.subplots(figsize=(7, 3.5))
ax.plot(range(1, len(uninterrupted) + 1), uninterrupted, color="tab:blue", lw=3, alpha=0.4, label="uninterrupted")
ax.plot(range(1, KILL_AT + 1), before_kill, color="tab:orange", marker=".", ls="none", label="before the kill")
ax.plot(range(KILL_AT + 1, len(resumed) + 1), after_resume, color="tab:green", marker=".", ls="none", label="resumed from last.pt")
ax.axvline(KILL_AT + 0.5, color="grey", ls="--", lw=0.8)
ax.set_xlabel("optimizer step")
ax.set_ylabel("training loss")
ax.set_title("Kill at step 25, resume with a fresh model and Trainer")
ax.legend()
plt.tight_layout()
plt.show()

tol = {"rtol": 0, "atol": 0} if on_cpu else {"rtol": 1e-3, "atol": 1e-3}
max_diff = max(abs(a - b) for a, b in zip(uninterrupted, resumed, strict=True))
print(f"max |uninterrupted - resumed| over {len(resumed)} steps: {max_diff:.1e} (tolerance {tol})")
torch.testing.assert_close(torch.tensor(resumed), torch.tensor(uninterrupted), **tol, msg="a resumed run must match the uninterrupted one")


# %% [markdown]
# On a CPU in deterministic mode the resumed losses are **bitwise** identical to the
# uninterrupted ones. On a GPU, non-deterministic kernels may change the last bits, so we
# compare with a tolerance. If a resume ever makes the loss jump, one of the rows of the table
# above is missing.
#
# The log lines show the structured format: an event name (`train`, `checkpoint`) and
# `key=value` pairs. A log shipper, or `configure_logging(json=True)`, turns them into one JSON
# object per line that you can query later ("lr and grad_norm of run X at step 20").
#
# Two more properties of a checkpoint matter in production:
#
# - **Atomic writes.** `save_checkpoint` writes to a temporary file in the same folder, flushes it
#   to disk, then `os.replace`s it over the target. A crash mid-write leaves the previous
#   checkpoint intact instead of a truncated file that fails to load: the folder above holds no
#   leftover temporary files.
# - **`weights_only=True`.** `torch.load` unpickles, and unpickling can run arbitrary code: a
#   checkpoint from somewhere else is a program. With `weights_only=True` (the default since
#   PyTorch 2.6) it only accepts tensors, numbers, strings and containers. That is why `mlcraft`
#   stores RNG states as tensors and the config as a plain dict, and loads with it on.
#
# **Predict, then run.** The file `bad.pt` holds an object whose unpickling calls `print`. Which
# of the two `torch.load` calls prints the line, and what does the other one do?


# %%
class RunsCodeOnLoad:
    """Unpickling calls what __reduce__ returns. Here it is print; an attacker would pick os.system."""

    def __reduce__(self):
        return (print, ("    >>> this line was printed by torch.load: loading the file ran code",))


with tempfile.TemporaryDirectory() as tmp:
    ok_path = save_checkpoint(Path(tmp) / "ok.pt", {"weights": torch.ones(2), "step": 3})
    print("a plain dict loads with weights_only=True:", load_checkpoint(ok_path))
    bad_path = Path(tmp) / "bad.pt"
    torch.save({"weights": torch.ones(2), "extra": RunsCodeOnLoad()}, bad_path)
    print("torch.load(weights_only=False):")
    torch.load(bad_path, weights_only=False)
    try:
        torch.load(bad_path, weights_only=True)
    except pickle.UnpicklingError as err:
        reason = next(line.strip() for line in str(err).splitlines() if "Unsupported global" in line)
        print(f"torch.load(weights_only=True): refused. {reason.split('. ')[0]}.")


# %% [markdown]
# ## 12. The production loop
#
# Now the whole thing with one config: AdamW, warmup then cosine decay, clipping, accumulation
# (2 micro-batches of 32 per step), mixed precision, evaluation every 10 steps, early stopping on
# the validation loss, a best checkpoint, and a `HistoryCallback` that collects the logged
# metrics for plotting. To make early stopping do something, we train on only 1024 examples for
# up to 40 epochs: the network will start to memorise them, and the validation loss will turn up.
#
# **Predict, then run.** Will the run use all its planned steps, or a small fraction of them?
# Which will score better on validation: the last weights or those in `best.pt`?


# %%
small_train = TensorDataset(X_train[:1024], y_train[:1024])
config = TrainingConfig(
    lr=1e-3, weight_decay=0.01, batch_size=32, accumulation_steps=2, epochs=40,
    warmup_steps=20, schedule="cosine", min_lr_ratio=0.05, grad_clip_norm=1.0, amp=True, seed=0,
    eval_every=10, monitor="val_loss", monitor_mode="min", early_stopping_patience=4,
    log_every=5, progress=True,
)  # fmt: skip
print(config.model_dump_json(indent=None))

history = HistoryCallback()
with tempfile.TemporaryDirectory() as tmp:
    config = config.model_copy(update={"checkpoint_dir": Path(tmp)})
    seed_everything(0)
    trainer = Trainer(
        make_mlp(hidden=256, depth=2), config, small_train, cross_entropy,
        val_data=val_set,
        metrics_fn=lambda out, tgt: {"acc": (out.argmax(-1) == tgt).sum()},  # sums; the Trainer divides
        callbacks=[history],
    )  # fmt: skip
    t0 = time.perf_counter()
    trainer.fit()
    fit_seconds = time.perf_counter() - t0
    last_eval = trainer.evaluate()
    best = load_checkpoint(Path(tmp) / "best.pt")
    trainer.model.load_state_dict(best["model"])  # finish with the best weights, not the last
    best_eval = trainer.evaluate()

print(f"{trainer.state.step} of {trainer.total_steps} planned steps in {fit_seconds:.1f} s; stopped early: {trainer.state.stopped_early}")
print(f"last weights: val loss {last_eval['val_loss']:.3f}, acc {last_eval['val_acc']:.3f}")
print(f"best weights (step {best['state']['step']}): val loss {best_eval['val_loss']:.3f}, acc {best_eval['val_acc']:.3f}; ceiling {bayes_acc:.3f}")
torch.testing.assert_close(best_eval["val_loss"], min(e["val_loss"] for e in trainer.eval_history), rtol=1e-6, atol=1e-6, msg="best.pt holds the best evaluation")


# %%
steps_logged = [m["step"] for m in history.steps]  # every log_every-th step
evals = trainer.eval_history
fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
axes[0].plot([h["step"] for h in trainer.history], [h["loss"] for h in trainer.history], color="tab:blue", alpha=0.3, lw=0.8, label="train (every step)")
axes[0].plot([e["step"] for e in evals], [e["val_loss"] for e in evals], "o-", color="tab:red", label="validation")
best_step = best["state"]["step"]
axes[0].axvline(best_step, color="grey", ls="--", lw=0.8, label=f"best (step {best_step})")
axes[0].set_yscale("log")
axes[0].set_ylabel("cross-entropy (log)")
axes[0].set_title("Loss")
axes[1].plot([e["step"] for e in evals], [e["val_acc"] for e in evals], "o-", color="tab:red", label="validation accuracy")
axes[1].axhline(bayes_acc, color="grey", ls=":", lw=0.8, label=f"best possible ({bayes_acc:.3f})")
axes[1].set_ylabel("accuracy")
axes[1].set_title("Validation accuracy")
planned = [config.lr * lr_multiplier(t, warmup_steps=config.warmup_steps, total_steps=trainer.total_steps, min_lr_ratio=config.min_lr_ratio) for t in range(trainer.total_steps)]
logged_lr = torch.tensor([m["lr"] for m in history.steps], dtype=torch.float64)
expected_lr = torch.tensor([planned[int(m["step"]) - 1] for m in history.steps], dtype=torch.float64)
torch.testing.assert_close(logged_lr, expected_lr, rtol=1e-12, atol=0, msg="the Trainer follows the planned schedule")
axes[2].plot(range(1, trainer.total_steps + 1), planned, color="grey", ls="--", lw=1, label="planned schedule")
axes[2].plot(steps_logged, [m["lr"] for m in history.steps], ".", color="tab:green", label="lr used (HistoryCallback)")
axes[2].axvline(trainer.state.step, color="tab:red", lw=0.8, label=f"early stop (step {trainer.state.step})")
axes[2].set_ylabel("learning rate")
axes[2].set_title("Learning rate")
for ax in axes:
    ax.set_xlabel("optimizer step")
    ax.legend(fontsize=8)
plt.tight_layout()
plt.show()


# %% [markdown]
# The training loss keeps falling while the validation loss turns up: the network is memorising
# its 1024 examples. After four evaluations in a row without a new best, early stopping ends the
# run, long before the planned number of steps, and `best.pt` holds the weights from the best
# evaluation. Note that the schedule was planned for all 40 epochs, so the lr was still high
# when the run stopped (right panel). If you rely on early stopping, plan fewer epochs or a
# shorter schedule.
#
# The rule behind early stopping is simple enough to show on its own: patience counts the
# evaluations since the last improvement.
#
# **Predict, then run.** With patience 3 and the validation losses 1.0, 0.8, 0.82, 0.79, 0.80,
# 0.81, 0.85, at which value does `step` first return `True`?


# %%
stopper = EarlyStopping(patience=3, mode="min")
for value in [1.0, 0.8, 0.82, 0.79, 0.80, 0.81, 0.85]:
    stop = stopper.step(value)
    print(f"val_loss {value:.2f}  best {stopper.best:.2f}  evaluations without improvement {stopper.bad_evals}  stop: {stop}")


# %% [markdown]
# ## 13. Feeding the loop: `DataLoader` throughput
#
# So far the data sat in memory as one tensor. Real data is read from disk and decoded (JPEG
# images, audio, tokenised text), often in Python, one example at a time. If producing a batch
# takes longer than a training step, the accelerator waits: a starved GPU trains no faster when
# you buy a bigger one, and every model-side optimisation in this lesson is wasted. `DataLoader`
# hides the loading behind the step by running `__getitem__` in `num_workers` background
# processes, each assembling whole batches ahead of time. Its knobs:
#
# | argument | what it does |
# |---|---|
# | `num_workers` | worker processes; 0 loads in the training process itself, between steps |
# | `batch_size` | examples per batch; a worker sends each batch to the training process as one pickled message |
# | `prefetch_factor` | batches each worker prepares ahead (default 2); smooths uneven loading times, adds no throughput |
# | `persistent_workers` | keep the workers alive between epochs instead of starting new ones every epoch |
# | `pin_memory` | put batches in page-locked memory so that `.to("cuda", non_blocking=True)` copies while the GPU computes; without CUDA it does nothing (PyTorch warns and ignores it) |
#
# Workers are processes, and how they are started matters in a notebook. With `fork` (the default
# on Linux up to Python 3.13) a worker is a copy of the running kernel and finds every class
# defined in it. With `spawn` (macOS, Windows) or `forkserver` (Linux from Python 3.14) a worker
# is a fresh interpreter that receives the dataset *pickled*, and pickle stores a class as
# "module, name". A class defined in a notebook lives in `__main__`, which the fresh interpreter
# does not have, and the worker dies with `Can't get attribute ... on <module '__main__'>`. The
# fix that works everywhere: put the dataset class in a `.py` file and import it. The lesson writes
# such a file to a temporary folder; in a project it sits next to the notebook. Our data set makes
# `__getitem__` slow on purpose, in one of two ways: `work="cpu"` spins the CPU (like decoding an
# image), `work="wait"` sleeps (like waiting for a disk or a network).
#
# **Predict, then run.** Unpickling the dataset in a fresh interpreter is what a spawned worker
# does. Which of the two classes survives it?


# %%
print(f"start method for DataLoader workers here: {torch.multiprocessing.get_start_method()}; CPU cores: {os.cpu_count()}")

SLOW_DATA = textwrap.dedent('''
    """A map-style data set with a slow __getitem__, importable by DataLoader workers under any start method."""
    import time

    import numpy as np


    class SlowDataset:
        """Item i: (64 float32 features, label). Each item costs `ms` milliseconds of `work`: "cpu" spins
        the processor (decoding), "wait" sleeps (I/O). Items of every `slow_every`-th batch of `batch`
        items cost `slow_ms` instead (a cold cache, a large file)."""

        def __init__(self, n, ms=1.0, work="cpu", slow_every=0, slow_ms=0.0, batch=16):
            self.n, self.seconds, self.work = n, ms / 1000, work
            self.slow_every, self.slow_seconds, self.batch = slow_every, slow_ms / 1000, batch

        def __len__(self):
            return self.n

        def __getitem__(self, i):
            slow = self.slow_every and (i // self.batch) % self.slow_every == 0
            seconds = self.slow_seconds if slow else self.seconds
            if self.work == "wait":
                time.sleep(seconds)
            else:
                end = time.perf_counter() + seconds
                while time.perf_counter() < end:
                    pass
            return np.full(64, i % 7, dtype=np.float32), i % 10
''')
data_module_dir = tempfile.TemporaryDirectory()
Path(data_module_dir.name, "slow_data.py").write_text(SLOW_DATA)
sys.path.insert(0, data_module_dir.name)  # spawned workers receive the parent's sys.path
SlowDataset = importlib.import_module("slow_data").SlowDataset  # the module written just above


class NotebookDataset(torch.utils.data.Dataset):
    """The same kind of class, defined in the notebook (that is, in __main__)."""

    def __len__(self):
        return 4

    def __getitem__(self, i):
        return i


def unpickle_in_fresh_interpreter(obj):
    """What a spawned worker does with the dataset: a new Python process unpickles it."""
    code = "import pickle, sys; sys.path[:0] = sys.argv[1:]; print(type(pickle.loads(sys.stdin.buffer.read())).__name__, 'rebuilt')"
    result = subprocess.run([sys.executable, "-c", code, data_module_dir.name], input=pickle.dumps(obj), capture_output=True, timeout=60)
    return result.stdout.decode().strip() or result.stderr.decode().strip().splitlines()[-1]


notebook_outcome = unpickle_in_fresh_interpreter(NotebookDataset())
module_outcome = unpickle_in_fresh_interpreter(SlowDataset(8))
print(f"class defined in the notebook: {notebook_outcome}")
print(f"class imported from slow_data.py: {module_outcome}")
assert "Can't get attribute" in notebook_outcome and module_outcome == "SlowDataset rebuilt"


# %% [markdown]
# `SlowDataset` needs no `torch.utils.data.Dataset` base class: a map-style data set is anything
# with `__len__` and `__getitem__`, and `DataLoader`'s default collate function stacks the NumPy
# arrays and labels into tensors. (Keeping `torch` out of the file also lets the check above start
# in a blink; a real worker imports torch, which takes seconds per spawned worker, every epoch
# unless the workers persist.)
#
# Now the throughput. For each setting we time the first batch (which includes starting the
# workers) separately from the samples per second after it.
#
# **Predict, then run.** Each item costs 1 ms. With 2 workers instead of 0, will the "wait" data
# set load about twice as fast? And the "cpu" one? With no work per item, will `batch_size=1` through
# two workers be faster or slower than loading in the training process?


# %%
def loader_throughput(dataset, **loader_kwargs):
    """(seconds to the first batch, samples per second after it) for one pass over `dataset`."""
    t0 = time.perf_counter()
    batches = iter(DataLoader(dataset, **loader_kwargs))
    next(batches)
    t_first = time.perf_counter() - t0
    t1, count = time.perf_counter(), 0
    for _, labels in batches:
        count += len(labels)
    return t_first, count / (time.perf_counter() - t1)


pin = device.type == "cuda"  # pin_memory helps only with CUDA
throughput = []
for work in ("cpu", "wait"):
    for workers in (0, 1, 2):
        throughput.append((f"1 ms of {work} per item", workers, 16, *loader_throughput(SlowDataset(128, ms=1.0, work=work), batch_size=16, num_workers=workers, pin_memory=pin)))
for workers, batch_size, n in ((0, 1, 512), (2, 1, 256), (2, 32, 2048)):
    throughput.append(("no work per item", workers, batch_size, *loader_throughput(SlowDataset(n, ms=0.0), batch_size=batch_size, num_workers=workers, pin_memory=pin)))
print(f"{'data set':>22} {'workers':>8} {'batch':>6} {'first batch':>12} {'samples/s after it':>19}")
for name, workers, batch_size, t_first, rate in throughput:
    print(f"{name:>22} {workers:>8} {batch_size:>6} {t_first * 1e3:>9.0f} ms {rate:>19,.0f}")


# %% [markdown]
# Read the table in three parts:
#
# - **"wait" items** scale with the number of workers whatever the machine: a sleeping process
#   needs no core, so two workers wait in parallel and deliver close to twice the rate of one.
# - **"cpu" items** scale only with *free* cores. On a machine with idle cores, two workers are
#   close to twice as fast again; on a busy one (a 2-core machine shared with other jobs, which is
#   where this lesson's numbers were taken) they gain little or nothing, and more workers than
#   cores only add switching. Start with `num_workers` at the number of cores you can spare.
# - **The first batch** is slower with workers: each must start before it can deliver (with
#   `spawn`, each also imports torch). You pay that every epoch unless `persistent_workers=True`.
#   And the **batch size** matters for throughput itself: with cheap items, one-item batches sent
#   between processes are far slower than no workers at all, because each batch is a pickled
#   message; larger batches amortise it.
#
# The question that matters in training is not the loader's rate on its own but whether the step
# waits for it. Measure it inside the loop: the time spent in `next(batch)` against the time spent
# in the step. Below, the "step" is a real forward and backward pass padded with a sleep to 8 ms,
# a stand-in for an accelerator step during which the CPU is free. The data set is uneven: one batch in four is 6 times
# slower than the others, 9 ms per batch on average, so one process cannot keep up while two can.
# On a GPU, synchronise before reading the clock after the step: kernels run asynchronously, and
# without a sync the step's time would show up as waiting for the next batch.
#
# **Predict, then run.** What share of the time will the loop spend waiting with 0 workers? With
# 2 workers, will a larger `prefetch_factor` reduce it? And in the second epoch, how long will the
# first batch take with persistent workers?


# %%
STEP_SECONDS = 0.008
step_model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, NUM_CLASSES)).to(device)
step_opt = torch.optim.SGD(step_model.parameters(), lr=0.01)


def waiting_share(loader):
    """Seconds waiting for batches and seconds in steps over one epoch (the first batch left out)."""
    waiting = stepping = 0.0
    t_ready = time.perf_counter()
    for i, (features, labels) in enumerate(loader):
        t_got = time.perf_counter()
        features, labels = features.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        loss = cross_entropy(step_model(features), labels)
        step_opt.zero_grad(set_to_none=True)
        loss.backward()
        step_opt.step()
        sync()  # without it, on a GPU, the step's time would show up as waiting
        time.sleep(max(0.0, STEP_SECONDS - (time.perf_counter() - t_got)))  # the rest of the "accelerator" step
        if i > 0:  # the first batch includes the workers' start-up
            waiting += t_got - t_ready
            stepping += time.perf_counter() - t_got
        t_ready = time.perf_counter()
    return waiting, stepping


uneven = SlowDataset(256, ms=0.25, work="wait", slow_every=4, slow_ms=1.5, batch=16)
print(f"{'loader':>32} {'waiting':>9} {'in steps':>9} {'share waiting':>14}")
for workers, prefetch in ((0, None), (2, 1), (2, 2), (2, 4)):
    extra = {} if workers == 0 else {"prefetch_factor": prefetch}
    waiting, stepping = waiting_share(DataLoader(uneven, batch_size=16, num_workers=workers, pin_memory=pin, **extra))
    label = f"{workers} workers" + ("" if workers == 0 else f", prefetch_factor {prefetch}")
    print(f"{label:>32} {waiting * 1e3:>6.0f} ms {stepping * 1e3:>6.0f} ms {waiting / (waiting + stepping):>14.0%}")

for persistent in (False, True):
    loader = DataLoader(SlowDataset(32, ms=0.25, work="wait"), batch_size=16, num_workers=2, persistent_workers=persistent)
    first_batch = []
    for _ in range(2):  # two epochs
        t0 = time.perf_counter()
        batches = iter(loader)
        next(batches)
        first_batch.append(time.perf_counter() - t0)
        for _ in batches:
            pass
    print(f"persistent_workers={persistent!s:5}: first batch of epoch 1 {first_batch[0] * 1e3:4.0f} ms, of epoch 2 {first_batch[1] * 1e3:4.0f} ms")
    del loader, batches  # shuts persistent workers down

sys.path.remove(data_module_dir.name)
data_module_dir.cleanup()


# %% [markdown]
# With no workers, the loop spends about half of its time waiting for data: the step is starved,
# and a faster model would not make the epoch shorter. Two workers load in parallel with the step
# and most of the waiting disappears. A deeper `prefetch_factor` lets the worker that holds a slow
# batch start on it earlier, which absorbs part of the unevenness (batches are delivered in order,
# so one slow batch holds up the others); it cannot make the loader faster on average. (On a shared
# machine these percentages move by several points from run to run: run the cell twice before
# reading small differences.) Persistent workers skip the start-up at every epoch after the first.
#
# The diagnosis carries over to any setup: if the share waiting is more than a few per cent,
# the data is the bottleneck. Then add workers (up to the free cores), make `__getitem__` cheaper
# (decode once and cache, read memory-mapped arrays, move augmentation to the GPU), raise the
# batch size per message, and on CUDA set `pin_memory=True` with `non_blocking=True` copies (the
# `Trainer`'s `move_to` uses `non_blocking=True`). On a GPU, the utilisation reported by
# `nvidia-smi` and gaps in a profiler timeline tell the same story from the other side.


# %% [markdown]
# ## 14. Outgrowing one GPU: distributed data parallel
#
# When one GPU is too slow, **data parallelism** runs one process per GPU, each with a full copy
# of the model, each on a different slice of every batch:
#
# 1. **Launch** with `torchrun`, which starts the processes and gives each its `RANK`,
#    `LOCAL_RANK` (which GPU on this machine) and `WORLD_SIZE`:
#
#    ```bash
#    torchrun --standalone --nproc_per_node 4 train.py   # 4 GPUs on one machine
#    ```
#
#    In the script, `init_distributed()` reads those variables and joins the process group
#    (`nccl` on GPUs, `gloo` on CPUs).
# 2. **Shard the data** with `DistributedSampler`: each rank gets a disjoint `1/WORLD_SIZE` of
#    every epoch. Call `sampler.set_epoch(epoch)` at the start of each epoch, or every epoch is
#    shuffled the same way.
# 3. **Wrap the model** in `DistributedDataParallel`. It broadcasts rank 0's weights at start, and
#    during `backward()` it **all-reduces** (averages) the gradients across ranks, overlapping the
#    communication with the rest of the backward pass. Every rank then takes the same optimizer
#    step from the same gradients, so the copies stay identical without ever sending weights.
# 4. **Accumulate without talking**: during accumulation, only the last micro-batch needs the
#    all-reduce. Wrap the others in `model.no_sync()`, or you pay for communication you throw away.
# 5. **Rank 0 only** logs, shows the progress bar and writes checkpoints (the others wait at a
#    barrier); otherwise you get N copies of every line and N processes writing the same file.
#
# The effective batch size is `batch_size × accumulation_steps × WORLD_SIZE`; scale the learning
# rate (and warmup) with it. `Trainer(..., distributed=init_distributed())` does all of the above.
# To see the moving parts, here is a bare DDP script, run with two CPU processes right now.
#
# **Predict, then run.** 1024 samples on two ranks: how many samples is each rank's shard in
# epoch 0, and how many samples do the shards share? The two ranks seed their models differently:
# how far apart will their weights be at the end?


# %%
DDP_SCRIPT = textwrap.dedent('''
    import torch
    import torch.distributed as dist
    from contextlib import nullcontext
    from torch import nn
    from torch.nn.parallel import DistributedDataParallel
    from torch.utils.data import DataLoader, DistributedSampler, TensorDataset
    from mlcraft.training import cleanup_distributed, init_distributed

    ctx = init_distributed("cpu")                       # reads RANK, WORLD_SIZE...; gloo backend
    g = torch.Generator().manual_seed(0)                # the same data on every rank
    X = torch.randn(1024, 16, generator=g)
    y = X @ torch.randn(16, 1, generator=g) + 0.1 * torch.randn(1024, 1, generator=g)
    data = TensorDataset(X, y)
    sampler = DistributedSampler(data, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=0)
    loader = DataLoader(data, batch_size=32, sampler=sampler)

    torch.manual_seed(ctx.rank)                         # different inits on purpose: DDP broadcasts rank 0's
    model = DistributedDataParallel(nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 1)))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    accumulation = 2

    for epoch in range(4):
        sampler.set_epoch(epoch)                        # a new shuffle each epoch, the same on all ranks
        if epoch == 0:
            mine = torch.tensor(list(sampler))
            shards = [torch.empty_like(mine) for _ in range(ctx.world_size)]
            dist.all_gather(shards, mine)
        total = torch.zeros(2)
        for i, (xb, yb) in enumerate(loader):
            sync_now = (i + 1) % accumulation == 0
            with nullcontext() if sync_now else model.no_sync():   # all-reduce on the last micro-batch only
                loss = nn.functional.mse_loss(model(xb), yb)
                (loss / accumulation).backward()
            if sync_now:
                opt.step()
                opt.zero_grad(set_to_none=True)
            total += torch.stack([loss.detach() * len(xb), torch.tensor(float(len(xb)))])
        dist.all_reduce(total)                          # the epoch loss over all ranks' samples
        if ctx.is_main:                                 # rank 0 logs
            print(f"epoch {epoch}: train MSE {total[0] / total[1]:.4f}")

    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    copies = [torch.empty_like(flat) for _ in range(ctx.world_size)]
    dist.all_gather(copies, flat)
    if ctx.is_main:
        union = torch.cat(shards)
        print(f"world size {ctx.world_size}; epoch 0 shards: {[len(s) for s in shards]} samples, "
              f"overlap {len(union) - len(union.unique())}, cover all {len(data)}: {len(union.unique()) == len(data)}")
        print(f"max |rank 0 weights - rank r weights| = {max((c - copies[0]).abs().max().item() for c in copies):.1e}")
    cleanup_distributed()                               # leave the process group, on every rank
''')


def torchrun(script, nproc=2):
    """`torchrun --standalone --nproc_per_node N script`, one CPU thread per process."""
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc), str(script)],
        timeout=120, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip


with tempfile.TemporaryDirectory() as tmp:
    script = Path(tmp) / "ddp_demo.py"
    script.write_text(DDP_SCRIPT)
    t0 = time.perf_counter()
    result = torchrun(script)
    if result.returncode != 0:  # gloo workers occasionally abort while shutting down on a busy machine
        print(f"torchrun exited with code {result.returncode}; running it once more")
        result = torchrun(script)
    ddp_seconds = time.perf_counter() - t0
if result.returncode != 0:
    raise RuntimeError(f"the DDP demo failed:\n{result.stderr[-3000:]}")
print(result.stdout.strip())
print(f"(2 processes, started, trained and joined in {ddp_seconds:.1f} s)")
assert "max |rank 0 weights - rank r weights| = 0.0e+00" in result.stdout, "DDP replicas must stay identical"


# %% [markdown]
# The two ranks started from *different* random weights, saw disjoint halves of the data, and
# still ended bitwise identical: DDP copied rank 0's weights at construction, and from then on
# both ranks applied the same averaged gradients. Only rank 0 printed. On a GPU machine the same
# script runs with `nccl` and one GPU per process; across machines, replace `--standalone` with
# `--nnodes`, `--node_rank` and a rendezvous address.
#
# ## 15. `torch.compile`
#
# `torch.compile` traces the model into graphs and generates fused kernels for them. On GPUs it
# often speeds training up by 1.3–2× for free; the price is a compilation pause at the first
# step (seconds to minutes) and again whenever input shapes change. `TrainingConfig(compile=True)`
# switches it on in the Trainer, through `maybe_compile`, which falls back to the eager model
# with a warning where compilation is unsupported or fails, so the same config runs everywhere.
#
# Generating kernels on a 2-core CPU is too slow for a lesson, so here we use the `"eager"`
# backend: the model is traced into graphs (the part that can break on unusual Python code) and
# the graphs run with ordinary PyTorch ops.
#
# **Predict, then run.** Will the compiled model's output match the eager one within 1e-5? Does
# the compiled module hold its own copy of the weights, or share the original's?


# %%
seed_everything(0)
model = make_mlp()
t0 = time.perf_counter()
compiled = maybe_compile(model, True, backend="eager")
out_compiled = compiled(Xva[:256])
print(f"{type(compiled).__name__} wrapping {type(model).__name__}; first call (tracing) {time.perf_counter() - t0:.2f} s")
torch.testing.assert_close(out_compiled, model(Xva[:256]), rtol=1e-5, atol=1e-6, msg="compiled and eager must agree")
shared = all(p is q for p, q in zip(compiled.parameters(), model.parameters(), strict=True))
print(f"compiled output matches eager; the compiled module shares the original's parameters: {shared}")


# %% [markdown]
# Two habits when you compile: compare the compiled model's outputs with eager ones once (as
# above), and save checkpoints from the original module (`trainer.model`), whose `state_dict`
# keys have no `_orig_mod.` prefix.
#
# ### Graph breaks and recompiles
#
# Dynamo reads the Python bytecode of the function and records its tensor operations into a
# graph. Whatever it cannot record ends the graph: a Python `if` on a tensor's *value*, `.item()`,
# `print`, a call into an unknown C extension. That is a **graph break**: the graph so far runs,
# Python executes the offending line, and a new graph starts after it. Each break costs a trip
# back to Python and splits code the compiler could have fused; in a training step a few breaks
# can cost most of what compiling buys. `torch._dynamo.explain(fn)(*args)` runs `fn` once under
# Dynamo and reports the graphs and the reason for each break.
#
# **Predict, then run.** The first function below has a `print`, a data-dependent `if` and an
# `.item()`. How many graphs will Dynamo cut it into?


# %%
def normalise_with_breaks(x):
    y = x.sin()
    print("    (printed inside the function) y:", tuple(y.shape), y.dtype)  # I/O
    if y.sum() > 0:  # a Python branch on a tensor's value
        y = y * 2
    scale = y.abs().max().item()  # a tensor turned into a Python float
    return (y / scale).cos()


def normalise_without_breaks(x):
    y = x.sin()
    y = torch.where(y.sum() > 0, y * 2, y)  # both branches computed, one selected: stays in the graph
    scale = y.abs().max()  # stays a tensor
    return (y / scale).cos()


x_small = torch.randn(64, generator=torch.Generator().manual_seed(0))
torch._dynamo.reset()
torch._logging.set_logs(dynamo=logging.ERROR)  # Dynamo logs a hint for every .item(); keep the output short
broken = torch._dynamo.explain(normalise_with_breaks)(x_small)
fixed = torch._dynamo.explain(normalise_without_breaks)(x_small)
torch._logging.set_logs()  # back to the defaults
print(f"with breaks: {broken.graph_count} graphs, {broken.graph_break_count} breaks")
for reason in broken.break_reasons:
    print(f"  - at `{reason.user_stack[-1].line}`: {reason.reason.splitlines()[0][:70]}")
print(f"rewritten:   {fixed.graph_count} graph, {fixed.graph_break_count} breaks")
assert (broken.graph_count, broken.graph_break_count) == (4, 3), "one break per culprit"
assert (fixed.graph_count, fixed.graph_break_count) == (1, 0), "the rewrite traces as one graph"
compiled_fixed = torch.compile(normalise_without_breaks, backend="eager", fullgraph=True)  # fullgraph: a break would raise
torch.testing.assert_close(compiled_fixed(x_small), normalise_with_breaks(x_small), rtol=1e-6, atol=1e-6, msg="same values")


# %% [markdown]
# Three culprits, three breaks, four graphs; the `print` ran in Python between them. The rewrite
# keeps the values on the tensor side: `torch.where` instead of `if`, a tensor instead of
# `.item()`, and no printing in the compiled region (log outside it, or every N steps).
# `torch.compile(..., fullgraph=True)` turns any break into an error, a cheap way to keep a hot
# function break-free.
#
# Every graph is also **specialised**: guards check, at every call, the shapes, dtypes and Python
# constants it was traced with, and when one fails Dynamo **recompiles**. After
# `torch._dynamo.config.recompile_limit` recompiles of one function (8 by default) it gives up and
# runs the function eagerly, silently slower. `torch._dynamo.utils.counters` counts the graphs
# compiled, and `torch._logging.set_logs(recompiles=True)` logs the guard that failed each time;
# we catch those lines to print them.
#
# **Predict, then run.** `scaled_sin(x, factor)` is called with 4 different lengths of `x`. How many
# graphs will be compiled by default, with `dynamic=False`, and with `dynamic=True`? And for one
# length but 4 different Python ints `factor`?


# %%
def scaled_sin(x, factor):
    return torch.sin(x * factor)


class CollectLines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines += [line.strip() for line in record.getMessage().splitlines() if line.strip().startswith("- ")]


def graphs_compiled(calls, mark_first_dynamic=False, **compile_kwargs):
    """Graphs Dynamo compiles for `calls`, a list of (x, factor), and the guard failures it logged."""
    torch._dynamo.reset()
    counters.clear()
    collect.lines.clear()
    fn = torch.compile(scaled_sin, backend="eager", **compile_kwargs)
    for i, (x, factor) in enumerate(calls):
        if mark_first_dynamic and i == 0:
            torch._dynamo.mark_dynamic(x, 0)  # "dimension 0 varies": trace it symbolically from the start
        fn(x, factor)
    return counters["stats"]["unique_graphs"], list(collect.lines)


lengths = [torch.randn(n) for n in (8, 16, 32, 64)]
scenarios = {
    "4 lengths, default": (lambda: graphs_compiled([(x, 2) for x in lengths])),
    "4 lengths, dynamic=False": (lambda: graphs_compiled([(x, 2) for x in lengths], dynamic=False)),
    "4 lengths, dynamic=True": (lambda: graphs_compiled([(x, 2) for x in lengths], dynamic=True)),
    "4 lengths, mark_dynamic": (lambda: graphs_compiled([(x.clone(), 2) for x in lengths], mark_first_dynamic=True)),
    "4 Python ints, default": (lambda: graphs_compiled([(lengths[0], k) for k in (2, 3, 4, 5)])),
}
collect = CollectLines()
recompile_log = logging.getLogger("torch._dynamo.guards.__recompiles")
torch._logging.set_logs(recompiles=True)
recompile_log.addHandler(collect)
recompile_log.propagate = False  # into our list instead of stderr
try:
    results = {name: run() for name, run in scenarios.items()}
finally:
    recompile_log.removeHandler(collect)
    recompile_log.propagate = True
    torch._logging.set_logs()
    torch._dynamo.reset()
for name, (count, reasons) in results.items():
    because = reasons[0][2:].split("  #")[0].strip() if reasons else ""  # the failed guard, without the source comment
    print(f"{name:26} {count} graph(s)" + (f"; first recompile because {because}" if because else ""))
expected_graphs = {"4 lengths, default": 2, "4 lengths, dynamic=False": 4, "4 lengths, dynamic=True": 1, "4 lengths, mark_dynamic": 1, "4 Python ints, default": 2}
assert {name: count for name, (count, _) in results.items()} == expected_graphs, "recompile counts"


# %% [markdown]
# By default the first call is traced with static sizes; when the length changes, the guard fails,
# and Dynamo recompiles with that dimension symbolic ("automatic dynamic shapes"), so later lengths
# reuse the second graph: 2 graphs. `dynamic=False` compiles once per length and would hit the
# recompile limit at the ninth; `dynamic=True`, or `torch._dynamo.mark_dynamic(x, 0)` on the first
# input, compiles one shape-generic graph from the start (with a real backend its kernels can be a
# little slower than specialised ones). Python ints behave like sizes: a changing int costs one
# recompile, then becomes symbolic. In a training loop the usual culprits are the smaller last
# batch of an epoch (`drop_last=True` avoids it), sequences of varying length (pad to a few fixed
# lengths), and a step counter passed in as a Python number.
#
# ## 16. What's next
#
# You now have a loop where every line has a reason: cleared gradients, honest evaluation, a
# peak lr from a range test and a warmup-cosine schedule checked against PyTorch's, clipping,
# accumulation with the right scale, weight decay only where it belongs and an EMA of the
# weights, mixed precision with the scaler in the right place and checkpointed activations,
# checkpoints that resume bitwise, a data pipeline that keeps up, the same loop on several
# processes, and a compiled model without breaks or needless recompiles. Lesson `02_attention` builds attention and a small transformer,
# and trains it with this `Trainer`.
#
# ## Self-check
#
# 1. A run's loss dips, then climbs back to about <code>ln 10</code> and stays there, while the
#    logged gradient norm keeps growing. Which line of the loop do you check first?
#
#    <details><summary>Answer</summary>The <code>zero_grad</code> call. <code>backward()</code>
#    adds into <code>.grad</code>, so without it every step uses the sum of all past gradients:
#    the norm climbs, each update is larger than the last, and the run falls apart without an
#    error (section 3).</details>
#
# 2. The same model scores differently each time you evaluate it, and much worse on a validation
#    file sorted by label. What is missing, and what else did those evaluations do to the model?
#
#    <details><summary>Answer</summary><code>model.eval()</code>: dropout was still on, and
#    BatchNorm normalised each batch with its own statistics, which on single-class batches
#    removes the signal. In training mode every forward pass also updated BatchNorm's running
#    statistics, so the evaluations changed the model. Evaluate in eval mode under
#    <code>torch.inference_mode()</code>, and restore every submodule's mode afterwards
#    (section 4).</details>
#
# 3. A warmup + cosine schedule has 100 warmup steps out of 1000 and no floor. What are the lr
#    multipliers at step 0, step 99 and step 550, and why warm up at all?
#
#    <details><summary>Answer</summary>0.01, 1.0 and 0.5. Early gradients are large and change
#    direction fast, and Adam's second-moment estimate rests on a handful of samples, so a high
#    peak lr applied at once can throw the weights where the run does not recover; in the lesson
#    the run without warmup ended worse (section 5).</details>
#
# 4. You accumulate 4 micro-batches of 8 with SGD and forget to divide each micro-batch loss by 4.
#    What changes compared with one batch of 32? When does accumulation not equal the big batch
#    even with the division?
#
#    <details><summary>Answer</summary>Every step is 4 times as large: the learning rate was
#    silently multiplied by 4. With the division the steps are equal to float64 rounding, but not
#    with BatchNorm (its statistics come from 8 examples, not 32) or with micro-batches of unequal
#    size under a mean-reduced loss (section 8).</details>
#
# 5. With fp16 and a <code>GradScaler</code>, you call <code>clip_grad_norm_(params, 1.0)</code>
#    right after <code>backward()</code>. What happens?
#
#    <details><summary>Answer</summary>The gradients are still multiplied by the loss scale
#    (65536 at the start), so the measured norm is 65536 times too large and every step is clipped
#    to almost nothing. Call <code>scaler.unscale_(optimizer)</code> first, then clip, then
#    <code>scaler.step</code> and <code>scaler.update</code> (section 9).</details>
#
# 6. After a resume from a checkpoint the loss jumps, although the weights were restored. Name
#    three other pieces of state the checkpoint may be missing. Why load it with
#    <code>weights_only=True</code>?
#
#    <details><summary>Answer</summary>Any of: the optimizer state (Adam restarts cold), the
#    scheduler (the lr goes back to warmup), the scaler's current scale, the position in the
#    data, the RNG states, the early-stopping state. <code>torch.load</code> unpickles, and
#    unpickling can run arbitrary code; <code>weights_only=True</code> accepts only tensors,
#    numbers, strings and containers (section 11).</details>
#
# 7. Two GPUs, a batch of 32 per GPU, 4 accumulation steps. What is the effective batch size, and
#    why do the two copies of the model stay identical?
#
#    <details><summary>Answer</summary><code>32 × 4 × 2 = 256</code>. DDP broadcasts rank 0's
#    weights at construction and averages the gradients across ranks during
#    <code>backward()</code>, so both ranks take the same step from the same gradients. Use
#    <code>no_sync()</code> on all but the last micro-batch so that only one all-reduce runs per
#    step (section 14).</details>
#
# 8. An LR range test's smoothed loss is lowest at lr 2e-2. Which lr do you try first, and why
#    not 2e-2 itself? Why can the smoothing factor move the answer?
#
#    <details><summary>Answer</summary>About 2e-3, a tenth of it: at the minimum the loss is about
#    to turn up (explode, or break the network, as in section 6), so it is the edge of stability,
#    not the best lr. A heavy moving average
#    (<code>β = 0.98</code> over only 100 steps) lags the raw losses and flattens the dip, which
#    moves the minimum to larger lrs; use a lighter one or more steps. Then confirm with short
#    runs at the suggestion and around it (section 6).</details>
#
# 9. What does <code>checkpoint(block, x, use_reentrant=False)</code> keep during the forward pass,
#    what does it cost, and why are the gradients still exact with dropout inside the block?
#
#    <details><summary>Answer</summary>Only the block's input; the activations inside are
#    recomputed during backward by running the block's forward again, about one extra forward pass
#    of time. The saved RNG state is restored for the recomputation, so dropout draws the same
#    masks and the gradients are bitwise those of the plain model (section 9).</details>
#
# 10. Why keep weight decay off biases, LayerNorm/BatchNorm parameters and embeddings, and what goes
#     wrong with "decay every parameter whose name contains <code>weight</code>" in a GPT with
#     tied input and output embeddings?
#
#     <details><summary>Answer</summary>Decay pulls towards zero, which for a bias or a norm's
#     scale is not a simpler model but a different one, and it shrinks every embedding row each step
#     while only the rows in the batch get a gradient. The name rule decays the norm scales
#     (<code>ln.weight</code>) and the embedding, and it lists the tied matrix twice, under both of
#     its names, in the decay group. PyTorch refuses a tensor in two different groups, but a
#     duplicate inside one group only gets a warning, and the tensor is then updated twice per
#     step (twice the decay, two Adam steps). Group by module type and dimension, each tensor
#     once (section 10).</details>
#
# 11. An EMA of the weights with <code>decay=0.999</code>, started from the initial weights,
#     evaluates worse than the raw weights after 500 steps. Why, and what do you change?
#
#     <details><summary>Answer</summary>The average still holds <code>0.999^500 ≈ 61%</code> of the
#     random initial weights: its memory is about <code>1/(1 − decay)</code> = 1000 steps. Use
#     warmup (bias correction: the average of the weights seen so far), start the EMA later, or
#     lower the decay for a short run (section 10).</details>
#
# 12. A training step waits for data 40% of the time. How did you measure that, and what do you try?
#     Why may <code>num_workers=4</code> not help a CPU-heavy <code>__getitem__</code> on a busy
#     2-core machine, and why does a data set class defined in a notebook fail on macOS?
#
#     <details><summary>Answer</summary>Time spent in <code>next(batch)</code> against time in the
#     step (synchronised on a GPU). Add workers up to the free cores, make loading cheaper, larger
#     batches per message, <code>persistent_workers</code> for the start-up, a deeper
#     <code>prefetch_factor</code> for uneven loading, <code>pin_memory</code> with
#     <code>non_blocking</code> copies on CUDA. CPU-bound work scales only with free cores. macOS
#     starts workers with <code>spawn</code>: a fresh interpreter unpickles the data set and cannot
#     find a class that lives in the notebook's <code>__main__</code>; import it from a
#     <code>.py</code> file (section 13).</details>
#
# 13. A compiled training step is fast for a while, then slows down at the end of every epoch and
#     after some changes stops being compiled at all. What do you look for, and how do you fix it?
#
#     <details><summary>Answer</summary>Recompiles: a guard failed on a new shape (the smaller last
#     batch, a new sequence length) or a new Python constant. Count them with
#     <code>torch._dynamo.utils.counters</code> or log them with
#     <code>torch._logging.set_logs(recompiles=True)</code>; past <code>recompile_limit</code> the
#     function runs eagerly. Fix with <code>drop_last=True</code>, padding to a few lengths,
#     <code>mark_dynamic</code> or <code>dynamic=True</code>. Check for graph breaks with
#     <code>torch._dynamo.explain</code> and <code>fullgraph=True</code> (section 15).</details>
#
# ## Further reading
#
# - D. P. Kingma, J. Ba (2015), "Adam: a method for stochastic optimization", ICLR,
#   https://arxiv.org/abs/1412.6980
# - I. Loshchilov, F. Hutter (2019), "Decoupled weight decay regularization" (AdamW; the decay
#   that parameter groups keep off biases and norms), ICLR, https://arxiv.org/abs/1711.05101
# - I. Loshchilov, F. Hutter (2017), "SGDR: stochastic gradient descent with warm restarts" (the
#   cosine schedule), ICLR, https://arxiv.org/abs/1608.03983
# - P. Goyal et al. (2017), "Accurate, large minibatch SGD: training ImageNet in 1 hour" (linear
#   warmup, scaling the lr with the batch), https://arxiv.org/abs/1706.02677
# - L. Liu et al. (2020), "On the variance of the adaptive learning rate and beyond" (why Adam
#   needs warmup), ICLR, https://arxiv.org/abs/1908.03265
# - L. N. Smith (2017), "Cyclical learning rates for training neural networks" (the LR range
#   test), WACV, https://arxiv.org/abs/1506.01186; fastai's `lr_find`,
#   https://docs.fast.ai/callback.schedule.html
# - Weight-decay groups in three reference codebases: BERT's `optimization.py` (no decay for
#   `LayerNorm` and `bias`), https://github.com/google-research/bert/blob/master/optimization.py;
#   minGPT's `configure_optimizers` (embeddings not decayed),
#   https://github.com/karpathy/minGPT/blob/master/mingpt/model.py; nanoGPT's (embeddings
#   decayed), https://github.com/karpathy/nanoGPT/blob/master/model.py
# - R. Pascanu, T. Mikolov, Y. Bengio (2013), "On the difficulty of training recurrent neural
#   networks" (clipping by the gradient norm), ICML, https://arxiv.org/abs/1211.5063
# - S. Ioffe, C. Szegedy (2015), "Batch normalization: accelerating deep network training by
#   reducing internal covariate shift", ICML, https://arxiv.org/abs/1502.03167
# - P. Micikevicius et al. (2018), "Mixed precision training" (fp32 master weights, loss
#   scaling), ICLR, https://arxiv.org/abs/1710.03740
# - T. Chen, B. Xu, C. Zhang, C. Guestrin (2016), "Training deep nets with sublinear memory cost"
#   (activation checkpointing), https://arxiv.org/abs/1604.06174; PyTorch documentation,
#   `torch.utils.checkpoint`, https://pytorch.org/docs/stable/checkpoint.html
# - B. T. Polyak, A. B. Juditsky (1992), "Acceleration of stochastic approximation by averaging",
#   SIAM Journal on Control and Optimization 30(4), https://doi.org/10.1137/0330046;
#   A. Tarvainen, H. Valpola (2017), "Mean teachers are better role models" (an EMA of the weights
#   as a teacher), NeurIPS, https://arxiv.org/abs/1703.01780; timm's `ModelEmaV2`,
#   https://github.com/huggingface/pytorch-image-models/blob/main/timm/utils/model_ema.py
# - PyTorch documentation, weight averaging (SWA and EMA) in `torch.optim.swa_utils`,
#   https://pytorch.org/docs/stable/optim.html#weight-averaging-swa-and-ema
# - PyTorch documentation, "Automatic Mixed Precision examples" (gradient clipping with
#   `unscale_`, accumulation), https://pytorch.org/docs/stable/notes/amp_examples.html; the
#   `torch.amp` package, https://pytorch.org/docs/stable/amp.html
# - PyTorch documentation, learning-rate schedulers in `torch.optim`,
#   https://pytorch.org/docs/stable/optim.html; `torch.load` and `weights_only`,
#   https://pytorch.org/docs/stable/generated/torch.load.html
# - PyTorch documentation, `torch.utils.data` (`DataLoader`, workers, pinned memory,
#   multiprocessing start methods), https://pytorch.org/docs/stable/data.html
# - PyTorch tutorial, "Saving and loading models",
#   https://pytorch.org/tutorials/beginner/saving_loading_models.html
# - PyTorch documentation, "Distributed data parallel" design notes,
#   https://pytorch.org/docs/stable/notes/ddp.html; `torchrun`,
#   https://pytorch.org/docs/stable/elastic/run.html
# - S. Li et al. (2020), "PyTorch distributed: experiences on accelerating data parallel
#   training", VLDB, https://arxiv.org/abs/2006.15704
# - J. Ansel et al. (2024), "PyTorch 2: faster machine learning through dynamic Python bytecode
#   transformation and graph compilation", ASPLOS, https://doi.org/10.1145/3620665.3640366;
#   `torch.compile`, https://pytorch.org/docs/stable/generated/torch.compile.html; troubleshooting
#   (graph breaks, `torch._dynamo.explain`, recompilations),
#   https://pytorch.org/docs/stable/torch.compiler_troubleshooting.html; dynamic shapes,
#   https://pytorch.org/docs/stable/torch.compiler_dynamic_shapes.html
#
# ---
#
# - **Previous lesson:** [00_orientation.ipynb](00_orientation.ipynb)
# - **Exercise:** [../exercises/01_training_loops/01_training_loops.ipynb](../exercises/01_training_loops/01_training_loops.ipynb).
#   Check it with `mlcraft check exercises/01_training_loops/01_training_loops.ipynb`.
# - **Next lesson:** [02_attention.ipynb](02_attention.ipynb)
