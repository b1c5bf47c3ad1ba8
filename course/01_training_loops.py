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
# 6. gradient clipping;
# 7. gradient accumulation;
# 8. mixed precision: speed, memory, `GradScaler`, and the full step;
# 9. checkpoints that resume a run exactly;
# 10. the production loop: `mlcraft.training.Trainer` end to end;
# 11. outgrowing one GPU: distributed data parallel (DDP);
# 12. the `torch.compile` switch.
#
# Everything runs on the device you have, CPU included, on a synthetic data set generated here.
#
# **You will be able to…**
#
# - write a training loop and an evaluation function free of the quiet bugs: gradients never
#   cleared, evaluation in training mode (dropout, BatchNorm), a module's mode not restored;
# - build a warmup + cosine learning-rate schedule, check it against PyTorch's schedulers, and read
#   from the loss and gradient-norm curves when a run needs warmup or gradient clipping;
# - accumulate gradients over micro-batches so that the step equals the big-batch step, and say
#   when that equivalence fails;
# - measure what mixed precision buys on your device (step time, saved activation memory), call
#   `unscale_` before clipping, and check that fp32 and autocast runs learn the same model;
# - checkpoint everything a run needs (weights, optimizer, scheduler, scaler, data position, RNG
#   states) so that a resumed run matches an uninterrupted one bitwise on a CPU, and load
#   checkpoints with `weights_only=True`;
# - train with `mlcraft`'s `Trainer` (early stopping, best checkpoint, logged lr and gradient
#   norm), and say what DDP and `torch.compile` change and what they cost.
#
# **Prerequisites**: lesson `00_orientation` (seeding, devices and autocast dtypes, loss scaling,
# deterministic mode, the checklist before training). Outside the course: PyTorch tensors,
# `nn.Module` and optimizers (SGD, Adam); backpropagation and cross-entropy at the level of an
# introductory deep-learning course; what dropout and batch normalisation do.
#
# **Time**: reading about 55 min; exercise `exercises/01_training_loops` 90–120 min; running the
# whole notebook took 32 s (measured once, one intra-op thread, under `pytest --nbval-lax`) on a 2-core CPU; GPU: not measured.


# %%
# Set-up: on Colab, install the course package; everywhere else this cell does nothing.
import sys

if "google.colab" in sys.modules:
    import subprocess

    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "mlcraft[course] @ git+https://github.com/mlcraft/mlcraft"], check=True)


# %%
import math
import os
import pickle
import statistics
import subprocess
import tempfile
import textwrap
import time
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from torch import nn
from torch.nn.functional import cosine_similarity, cross_entropy
from torch.utils.data import TensorDataset

from mlcraft.config import TrainingConfig
from mlcraft.training import (
    EarlyStopping,
    HistoryCallback,
    Trainer,
    build_scheduler,
    load_checkpoint,
    lr_multiplier,
    maybe_compile,
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

configure_logging("WARNING")  # the Trainer logs structured metrics; section 9 shows what they look like
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
# feature (section 7 builds on it), and a classic bug when you forget to clear them.
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
# the global L2 norm of all gradients without changing them (section 6 uses it for real).
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
# ## 6. Gradient clipping
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
# ## 7. Gradient accumulation
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
# last micro-batch of a group needs to synchronise gradients (section 11).
#
# ## 8. Mixed precision
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
# ## 9. Checkpoints and exact resume
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
# | the config | to refuse resuming with different settings |
#
# From here on we use `mlcraft.training.Trainer`, which packages the step from section 8 with the
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
# ## 10. The production loop
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
# ## 11. Outgrowing one GPU: distributed data parallel
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
# ## 12. `torch.compile`
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
# ## 13. What's next
#
# You now have a loop where every line has a reason: cleared gradients, honest evaluation, a
# warmup-cosine schedule checked against PyTorch's, clipping, accumulation with the right scale,
# mixed precision with the scaler in the right place, checkpoints that resume bitwise, and the
# same loop on several processes. Lesson `02_attention` builds attention and a small transformer,
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
#    size under a mean-reduced loss (section 7).</details>
#
# 5. With fp16 and a <code>GradScaler</code>, you call <code>clip_grad_norm_(params, 1.0)</code>
#    right after <code>backward()</code>. What happens?
#
#    <details><summary>Answer</summary>The gradients are still multiplied by the loss scale
#    (65536 at the start), so the measured norm is 65536 times too large and every step is clipped
#    to almost nothing. Call <code>scaler.unscale_(optimizer)</code> first, then clip, then
#    <code>scaler.step</code> and <code>scaler.update</code> (section 8).</details>
#
# 6. After a resume from a checkpoint the loss jumps, although the weights were restored. Name
#    three other pieces of state the checkpoint may be missing. Why load it with
#    <code>weights_only=True</code>?
#
#    <details><summary>Answer</summary>Any of: the optimizer state (Adam restarts cold), the
#    scheduler (the lr goes back to warmup), the scaler's current scale, the position in the
#    data, the RNG states, the early-stopping state. <code>torch.load</code> unpickles, and
#    unpickling can run arbitrary code; <code>weights_only=True</code> accepts only tensors,
#    numbers, strings and containers (section 9).</details>
#
# 7. Two GPUs, a batch of 32 per GPU, 4 accumulation steps. What is the effective batch size, and
#    why do the two copies of the model stay identical?
#
#    <details><summary>Answer</summary><code>32 × 4 × 2 = 256</code>. DDP broadcasts rank 0's
#    weights at construction and averages the gradients across ranks during
#    <code>backward()</code>, so both ranks take the same step from the same gradients. Use
#    <code>no_sync()</code> on all but the last micro-batch so that only one all-reduce runs per
#    step (section 11).</details>
#
# ## Further reading
#
# - D. P. Kingma, J. Ba (2015), "Adam: a method for stochastic optimization", ICLR,
#   https://arxiv.org/abs/1412.6980
# - I. Loshchilov, F. Hutter (2019), "Decoupled weight decay regularization" (AdamW), ICLR,
#   https://arxiv.org/abs/1711.05101
# - I. Loshchilov, F. Hutter (2017), "SGDR: stochastic gradient descent with warm restarts" (the
#   cosine schedule), ICLR, https://arxiv.org/abs/1608.03983
# - P. Goyal et al. (2017), "Accurate, large minibatch SGD: training ImageNet in 1 hour" (linear
#   warmup, scaling the lr with the batch), https://arxiv.org/abs/1706.02677
# - L. Liu et al. (2020), "On the variance of the adaptive learning rate and beyond" (why Adam
#   needs warmup), ICLR, https://arxiv.org/abs/1908.03265
# - R. Pascanu, T. Mikolov, Y. Bengio (2013), "On the difficulty of training recurrent neural
#   networks" (clipping by the gradient norm), ICML, https://arxiv.org/abs/1211.5063
# - S. Ioffe, C. Szegedy (2015), "Batch normalization: accelerating deep network training by
#   reducing internal covariate shift", ICML, https://arxiv.org/abs/1502.03167
# - P. Micikevicius et al. (2018), "Mixed precision training" (fp32 master weights, loss
#   scaling), ICLR, https://arxiv.org/abs/1710.03740
# - PyTorch documentation, "Automatic Mixed Precision examples" (gradient clipping with
#   `unscale_`, accumulation), https://pytorch.org/docs/stable/notes/amp_examples.html; the
#   `torch.amp` package, https://pytorch.org/docs/stable/amp.html
# - PyTorch documentation, learning-rate schedulers in `torch.optim`,
#   https://pytorch.org/docs/stable/optim.html; `torch.load` and `weights_only`,
#   https://pytorch.org/docs/stable/generated/torch.load.html
# - PyTorch tutorial, "Saving and loading models",
#   https://pytorch.org/tutorials/beginner/saving_loading_models.html
# - PyTorch documentation, "Distributed data parallel" design notes,
#   https://pytorch.org/docs/stable/notes/ddp.html; `torchrun`,
#   https://pytorch.org/docs/stable/elastic/run.html
# - S. Li et al. (2020), "PyTorch distributed: experiences on accelerating data parallel
#   training", VLDB, https://arxiv.org/abs/2006.15704
# - J. Ansel et al. (2024), "PyTorch 2: faster machine learning through dynamic Python bytecode
#   transformation and graph compilation", ASPLOS, https://doi.org/10.1145/3620665.3640366;
#   `torch.compile`, https://pytorch.org/docs/stable/generated/torch.compile.html
#
# ---
#
# - **Previous lesson:** [00_orientation.ipynb](00_orientation.ipynb)
# - **Exercise:** [../exercises/01_training_loops/01_training_loops.ipynb](../exercises/01_training_loops/01_training_loops.ipynb).
#   Check it with `mlcraft check exercises/01_training_loops/01_training_loops.ipynb`.
# - **Next lesson:** [02_attention.ipynb](02_attention.ipynb)
