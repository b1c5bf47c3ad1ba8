# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown] nbgrader={"grade": false, "grade_id": "intro", "locked": true, "schema_version": 3, "solution": false, "task": false}
# # Module 01 — Training loops: mixed precision, accumulation, schedules, evaluation, checkpoints
#
# **You will be able to**
# - write a training step with autocast, a GradScaler and gradient clipping;
# - build a warmup + cosine learning-rate schedule and accumulate gradients over micro-batches;
# - evaluate without touching the model's state, restoring every submodule's mode;
# - save and resume checkpoints atomically, random number generators included, and stop early.
#
# **Prerequisites**: lessons `00_orientation` and `01_training_loops`; backpropagation and optimizers at the level of an introductory deep-learning course.
#
# **Time**: reading 15 min; exercises 90–120 min; the reference solution runs top to bottom in under a minute on a 2-core
# CPU, hidden tests included.
#
# **Further reading**: PyTorch, *Automatic Mixed Precision* recipe and `torch.amp.GradScaler` docs; Loshchilov and Hutter, *SGDR: Stochastic Gradient Descent with Warm Restarts*, ICLR 2017; Goyal et al., *Accurate, Large Minibatch SGD*, 2017 (warmup); PyTorch *Saving and loading models* docs.
#
# The training loop is the code that runs longest and fails most expensively. A loop that is
# subtly wrong still produces a falling loss curve: it just trains a worse model, or cannot be
# resumed after a crash, and nobody notices until the numbers do not add up. This module
# builds the pieces of a production loop one at a time, each small enough to test exactly:
#
# | Task | Function | Points |
# |------|----------|--------|
# | 1 | `train_step(model, batch, loss_fn, optimizer, scaler, *, device, amp_dtype, max_grad_norm)` | 3 |
# | 2 | `warmup_cosine_lr(step, *, base_lr, warmup_steps, total_steps, min_lr=0.0)` | 2 |
# | 3 | `accumulated_step(model, micro_batches, loss_fn, optimizer)` | 2 |
# | 4 | `evaluate(model, batches, loss_fn, device)` | 3 |
# | 5 | `save_checkpoint(...)` and `load_checkpoint(...)` | 3 |
# | 6 | `EarlyStopping(patience, mode, min_delta)` | 2 |
#
# **How this notebook works.** Replace each `raise NotImplementedError()` with your code, then
# run the test cell below it. The visible tests are a first check only: when the notebook is
# graded, each test cell also runs hidden tests. These check the edge cases named in the task
# statement, so read each statement to the end. Run the notebook from top to bottom before you
# submit, and do not change or delete the test cells.
#
# **How grading works.** When your notebook is graded, your cells run in a sandbox and the
# test cells run in the grader, apart from your code: the tests call your functions with data
# (tensors, numbers, lists...) and check what comes back. Parts of a test that need your
# code's objects or side effects are marked `@in_kernel`: they run beside your code and report
# what they saw, and the grader compares that with values it computes itself. Here that is
# every task but Task 2: a model trained by your `train_step` or `accumulated_step`, a model
# your `evaluate` must leave as it found it, the generators, files and moves of your
# checkpoint functions, and the state of your `EarlyStopping` object. `warmup_cosine_lr` takes
# and returns numbers, so its tests call it directly. So return exactly what each task asks
# for; nothing else in your notebook can change a test's verdict.
#
# The tests put models and tensors on `DEVICE`, the best device present (CUDA, then Apple
# MPS, then CPU), so your code must work on whatever device it is given. Everything is tiny:
# the whole notebook runs in well under a minute on a laptop CPU.
#
# Previous: lesson [`01_training_loops`](../../course/01_training_loops.ipynb) · Next: lesson
# [`02_attention`](../../course/02_attention.ipynb).


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
import os
import random
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 (the usual spelling)
from torch import nn

from mlcraft.classroom.testing import DEVICE, assert_close, call_without, in_kernel
from mlcraft.utils import amp_dtype, needs_grad_scaler

# The mixed-precision set-up for this machine (Module 00, Task 2): bfloat16 on the CPU and on
# recent GPUs, float16 (which needs an enabled GradScaler) on older GPUs and Apple GPUs.
AMP_DTYPE = amp_dtype(DEVICE)
print(f"torch {torch.__version__}; tests run on DEVICE = {DEVICE} with AMP_DTYPE = {AMP_DTYPE}")
print(f"a GradScaler is {'needed' if needs_grad_scaler(AMP_DTYPE) else 'not needed (created disabled)'} here")


# %% [markdown] nbgrader={"grade": false, "grade_id": "task-train-step", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Task 1 — One mixed-precision training step (3 points)
#
# Every training loop repeats the same step. Written carelessly, each line of it is a known
# production bug:
#
# 1. **Clear the old gradients**, with `optimizer.zero_grad(set_to_none=True)` (or
#    `model.zero_grad(set_to_none=True)`). `backward()` *adds* into `.grad`, so a step that
#    forgets this trains on the sum of every gradient so far. `set_to_none=True` frees the
#    memory and lets the optimizer skip parameters that received no gradient (with zeros, an
#    optimizer with weight decay or momentum would still move them).
# 2. **Move the batch** (inputs and targets) to `device`, with `.to(device, non_blocking=True)`:
#    with pinned memory the copy then overlaps with computation on a GPU (`non_blocking` only
#    changes when the copy happens, not its result).
# 3. **Forward pass and loss under autocast**: `with torch.autocast(device.type, dtype=amp_dtype):`.
#    Matrix multiplications run in 16 bits; the parameters stay `float32`. Call `backward()`
#    outside the `with` block.
# 4. **Backward through the scaler**: `scaler.scale(loss).backward()`. In `float16`, small
#    gradients underflow to zero; a `torch.amp.GradScaler` multiplies the loss by a large
#    factor (65536 by default) so they do not, and divides the gradients by it again before
#    the optimizer uses them. In `bfloat16` no scaling is needed and the scaler is created
#    disabled (`GradScaler(device.type, enabled=False)`): then every scaler method below
#    simply does nothing special, so the same code serves both cases.
# 5. **Unscale, then clip**: `scaler.unscale_(optimizer)` divides the gradients by the scale
#    *in place*; only then does `torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)`
#    see the true gradients. Clipping before unscaling compares gradients that are 65536 times
#    too large with `max_grad_norm`, which clips every step to almost nothing.
# 6. **Step and update through the scaler**: `scaler.step(optimizer)` calls `optimizer.step()`
#    unless a gradient is `inf` or `NaN` (a `float16` overflow), in which case it skips the
#    step; `scaler.update()` then lowers the scale after an overflow (and raises it after a run
#    of good steps). Calling `optimizer.step()` yourself applies `NaN` to the weights.
#
# Write
#
# ```python
# train_step(model, batch, loss_fn, optimizer, scaler, *, device, amp_dtype, max_grad_norm) -> dict
# ```
#
# - `model`: an `nn.Module` already on `device`, with `float32` parameters (do not change
#   their dtype); `optimizer` holds all of its parameters.
# - `batch`: a pair `(inputs, targets)` of tensors (a tuple, or a list as a `DataLoader` gives
#   it), on any device.
# - `loss_fn(outputs, targets)` returns a scalar loss tensor (a mean over the batch).
# - `scaler`: a `torch.amp.GradScaler`, enabled or not.
# - `device`: a `torch.device`; `amp_dtype`: `torch.bfloat16` or `torch.float16`.
# - `max_grad_norm`: a positive float, the largest total L2 norm the gradients may have;
#   `None` means no clipping (the norm is still measured and returned).
#
# It performs steps 1–6 and returns `{"loss": ..., "grad_norm": ...}`, both Python `float`s:
# `loss` is the loss value as computed in the forward pass (**not** multiplied by the scale),
# and `grad_norm` is the total L2 norm of all the gradients **after unscaling and before
# clipping** (what `clip_grad_norm_` returns; this is the number to log when you watch for
# exploding gradients). When the gradients are not finite, the returned norm is not finite
# either and the parameters must not change: `scaler.step` takes care of that.
#
# The tests compare one step of your function with a `float64` step computed without
# autocast, so they allow for the rounding of 16-bit arithmetic; they also use an *enabled*
# scaler with a large scale, a model whose gradients are left over from an earlier
# `backward()`, a parameter that takes no part in the loss, a loss that overflows, both
# `amp_dtype`s where the device supports them (`float16` autocast and an enabled scaler work on
# the CPU too), and a batch that is not yet on `device`.


# %% nbgrader={"grade": false, "grade_id": "train-step-answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def train_step(model, batch, loss_fn, optimizer, scaler, *, device, amp_dtype, max_grad_norm):
    """One optimizer step with autocast, loss scaling and gradient clipping.

    Returns:
        ``{"loss": float, "grad_norm": float}``: the unscaled loss and the pre-clip total
        gradient norm.
    """
    ### BEGIN SOLUTION
    optimizer.zero_grad(set_to_none=True)
    inputs, targets = batch
    inputs = inputs.to(device, non_blocking=True)
    targets = targets.to(device, non_blocking=True)
    with torch.autocast(device.type, dtype=amp_dtype):
        loss = loss_fn(model(inputs), targets)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)  # true gradients from here on: clip and measure them
    limit = float("inf") if max_grad_norm is None else max_grad_norm
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), limit)
    scaler.step(optimizer)  # skipped when a gradient is inf or NaN
    scaler.update()
    return {"loss": loss.item(), "grad_norm": grad_norm.item()}
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-train-step", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# A batch already on DEVICE would not show a missing move on a CPU-only grader, so some tests
# (here and in Task 4) use batches that play tensors on another device: only a move
# (.to(device), .cuda(), torch.as_tensor(..., device=...)) turns them into ordinary tensors, and
# the model and the loss record what reaches them.
class _OnAnotherDevice(torch.Tensor):
    """Stands for a tensor on another device: every operation works on its data, and a move gives
    back an ordinary torch.Tensor; anything else (no move, or a no-op .to(itself)) leaves it as is."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        with torch._C.DisableTorchFunctionSubclass():
            out = func(*args, **kwargs)
        targets_device = kwargs.get("device") is not None or any(
            isinstance(a, (torch.device, str))
            or (isinstance(a, int) and not isinstance(a, bool))
            or (isinstance(a, torch.Tensor) and not isinstance(a, _OnAnotherDevice))
            for a in args[1:]
        )
        moved = func in (torch.Tensor.cuda, torch.Tensor.cpu) or (
            func in (torch.Tensor.to, torch.as_tensor, torch.tensor) and targets_device
        )
        if moved and isinstance(out, torch.Tensor):
            return out.as_subclass(torch.Tensor)
        return out


class _KindProbe(nn.Module):
    """Passes its input through and records its Python type's name."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        self.seen.append(type(x).__name__)
        return x


_W_TRUE = torch.randn(8, 3, generator=torch.Generator().manual_seed(0))


def _tiny_model(seed):
    """A small float32 MLP on DEVICE (tanh, so 16-bit rounding cannot flip a ReLU on or off)."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3)).to(DEVICE)


def _tiny_batch(seed, n=32):
    """Inputs and labels on the CPU: train_step must move them to the device itself."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    return x, (x @ _W_TRUE).argmax(dim=1)


def _big_loss(out, y):
    """A loss with a large gradient: 50 times the cross-entropy."""
    return 50.0 * F.cross_entropy(out, y)


def _inf_loss(out, y):
    """A loss that overflows."""
    return F.cross_entropy(out, y) * torch.tensor(float("inf"), device=out.device)


def _loss_named(name):
    """The tests choose a loss by name."""
    return {"cross_entropy": F.cross_entropy, "50x cross_entropy": _big_loss, "inf": _inf_loss}[name]


def _params64(params):
    """float64 CPU copies of parameters (a model's, or the tensors a test got back)."""
    return [p.detach().to("cpu", torch.float64).clone() for p in params]


def _default_scaler(dtype=AMP_DTYPE):
    """GradScaler arguments: enabled only for float16, with a moderate scale so that the 50x loss cannot overflow."""
    return {"init_scale": 2.0**10, "enabled": needs_grad_scaler(dtype)}


@in_kernel
def _train_step_on(seed, batch, *, lr, max_norm, dtype, scaler_args, loss="cross_entropy", stale_batch=None):
    """Your train_step on _tiny_model(seed) with SGD(lr) and GradScaler(**scaler_args): what it returned, the
    parameters after the step (dtype kept) and the scaler's scale."""
    model = _tiny_model(seed)
    if stale_batch is not None:  # gradients left over from an earlier backward()
        x_old, y_old = stale_batch
        F.cross_entropy(model(x_old.to(DEVICE)), y_old.to(DEVICE)).backward()
    scaler = torch.amp.GradScaler(DEVICE.type, **scaler_args)
    returned = train_step(
        model,
        batch,
        _loss_named(loss),
        torch.optim.SGD(model.parameters(), lr=lr),
        scaler,
        device=DEVICE,
        amp_dtype=dtype,
        max_grad_norm=max_norm,
    )
    return {"returned": returned, "params": [p.detach().cpu() for p in model.parameters()], "scale": scaler.get_scale()}


def _reference_step(seed, batch, loss, lr, max_norm):
    """One plain-SGD step of _tiny_model(seed) in float64 without autocast, computed here:
    (loss, pre-clip norm, parameters before, parameters after)."""
    ref = _tiny_model(seed).to("cpu", torch.float64)
    before = _params64(ref.parameters())
    x, y = batch
    loss = _loss_named(loss)(ref(x.to("cpu", torch.float64)), y.cpu())
    grads = torch.autograd.grad(loss, list(ref.parameters()))
    norm = torch.sqrt(sum(g.pow(2).sum() for g in grads)).item()
    coef = 1.0 if max_norm is None else min(1.0, max_norm / (norm + 1e-6))
    with torch.no_grad():
        new = [p - lr * coef * g for p, g in zip(ref.parameters(), grads, strict=True)]
    return loss.item(), norm, before, new


def _check_update(after, before, expected, what):
    """The whole update (all parameters at once) must match the float64 update to 16-bit accuracy."""
    got = torch.cat([(a.to("cpu", torch.float64) - b).flatten() for a, b in zip(after, before, strict=True)])
    want = torch.cat([(e - b).flatten() for e, b in zip(expected, before, strict=True)])
    tol = 3e-2 * want.abs().max().item()
    assert_close(got, want, rtol=3e-2, atol=tol, msg=f"{what}: parameter update vs the float64 reference step")


# One step, no clipping in effect (the norm is far below 100).
_batch = _tiny_batch(1)
_want_loss, _want_norm, _before, _want_params = _reference_step(0, _batch, "cross_entropy", lr=0.5, max_norm=None)
_seen = _train_step_on(0, _batch, lr=0.5, max_norm=100.0, dtype=AMP_DTYPE, scaler_args=_default_scaler())
_out = _seen["returned"]
assert isinstance(_out, dict), f"train_step should return a dict, got {type(_out).__name__}"
assert set(_out) == {"loss", "grad_norm"}, f"train_step should return the keys 'loss' and 'grad_norm', got {set(_out)}"
assert all(type(v) is float for v in _out.values()), f"both values should be Python floats, got {_out}"
assert_close(_out["loss"], _want_loss, rtol=1e-2, atol=1e-3, msg="returned loss")
assert_close(_out["grad_norm"], _want_norm, rtol=2e-2, atol=1e-4, msg="returned grad_norm (before clipping)")
_check_update(_seen["params"], _before, _want_params, "one step")
assert all(p.dtype == torch.float32 for p in _seen["params"]), "the parameters should stay float32"

# Gradients left over from an earlier backward() must not leak into the step.
_seen = _train_step_on(
    0, _batch, lr=0.5, max_norm=100.0, dtype=AMP_DTYPE, scaler_args=_default_scaler(), stale_batch=_tiny_batch(2)
)
_check_update(_seen["params"], _before, _want_params, "a model with stale gradients")
### BEGIN HIDDEN TESTS
# AMP set-ups to check: this machine's, and also float16 with an enabled GradScaler (CPU and
# CUDA both support float16 autocast): a forward pass that ignores amp_dtype fails one of them.
_configs = [AMP_DTYPE]
if DEVICE.type in ("cpu", "cuda") and torch.float16 not in _configs:
    _configs.append(torch.float16)


class _DtypeProbe(nn.Module):
    """Passes its input through and records its dtype."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        self.seen.append(x.dtype)
        return x


@in_kernel
def _autocast_probe(seed, batch, dtype, scaler_args):
    """Your train_step on _tiny_model(seed) with a probe after the first layer: the dtypes the probe saw,
    and the parameters' dtypes after the step."""
    model = _tiny_model(seed)
    probe = _DtypeProbe()
    probed = nn.Sequential(model[0], probe, model[1], model[2])
    scaler = torch.amp.GradScaler(DEVICE.type, **scaler_args)
    optimizer = torch.optim.SGD(probed.parameters(), lr=0.1)
    train_step(probed, batch, F.cross_entropy, optimizer, scaler, device=DEVICE, amp_dtype=dtype, max_grad_norm=1.0)
    return probe.seen, [p.dtype for p in probed.parameters()]


_batch = _tiny_batch(4)
for _dtype in _configs:
    _tag = f"amp_dtype={_dtype}"

    # An enabled scaler with a large scale, and clipping in effect: the gradients must be
    # unscaled before they are clipped and measured. (Clipping first would compare gradients
    # 1024 times too large with max_grad_norm.)
    _, _norm0, _, _ = _reference_step(3, _batch, "cross_entropy", lr=1.0, max_norm=None)
    _max_norm = 0.25 * _norm0
    _want_loss, _want_norm, _start, _want_params = _reference_step(3, _batch, "cross_entropy", 1.0, _max_norm)
    _seen = _train_step_on(
        3,
        _batch,
        lr=1.0,
        max_norm=_max_norm,
        dtype=_dtype,
        scaler_args={"init_scale": 2.0**10, "growth_interval": 1000},
    )
    _out = _seen["returned"]
    assert_close(_out["loss"], _want_loss, rtol=1e-2, atol=1e-3, msg=f"{_tag}, enabled scaler: the loss, not scaled")
    assert_close(
        _out["grad_norm"], _want_norm, rtol=2e-2, atol=1e-4, msg=f"{_tag}, enabled scaler: unscaled, pre-clip norm"
    )
    _check_update(_seen["params"], _start, _want_params, f"{_tag}, enabled scaler (scale 1024), clipping in effect")
    _step_norm = torch.sqrt(
        sum(((p.to("cpu", torch.float64) - b) ** 2).sum() for p, b in zip(_seen["params"], _start, strict=True))
    )
    assert_close(
        _step_norm.item(), _max_norm, rtol=2e-2, atol=0.0, msg=f"{_tag}: with lr=1 the update norm equals max_grad_norm"
    )

    # A very small max_grad_norm with the default scaler.
    _want_loss, _want_norm, _start, _want_params = _reference_step(5, _batch, "cross_entropy", 1.0, 1e-3)
    _seen = _train_step_on(5, _batch, lr=1.0, max_norm=1e-3, dtype=_dtype, scaler_args=_default_scaler(_dtype))
    _check_update(_seen["params"], _start, _want_params, f"{_tag}, max_grad_norm=1e-3")
    assert_close(
        _seen["returned"]["grad_norm"],
        _want_norm,
        rtol=2e-2,
        atol=1e-4,
        msg=f"{_tag}: grad_norm is measured before clipping",
    )

    # max_grad_norm=None: no clipping at all, even for a large gradient (loss multiplied by 50).
    _want_loss, _want_norm, _start, _want_params = _reference_step(6, _batch, "50x cross_entropy", 0.01, None)
    assert _want_norm > 5.0, "test set-up: the gradient should be large here"
    _seen = _train_step_on(
        6,
        _batch,
        lr=0.01,
        max_norm=None,
        dtype=_dtype,
        scaler_args=_default_scaler(_dtype),
        loss="50x cross_entropy",
    )
    _out = _seen["returned"]
    _check_update(_seen["params"], _start, _want_params, f"{_tag}, max_grad_norm=None (no clipping)")
    assert_close(_out["grad_norm"], _want_norm, rtol=2e-2, atol=1e-4, msg=f"{_tag}, max_grad_norm=None: grad_norm")
    assert_close(_out["loss"], _want_loss, rtol=1e-2, atol=1e-3, msg=f"{_tag}, max_grad_norm=None: loss")

    # The forward pass runs under autocast: a probe after the first layer sees amp_dtype.
    _probe_seen, _param_dtypes = _autocast_probe(7, _batch, _dtype, _default_scaler(_dtype))
    assert _probe_seen == [_dtype], (
        f"{_tag}: the first Linear layer's output should be {_dtype} (forward pass under torch.autocast), "
        f"got {_probe_seen}"
    )
    assert all(d == torch.float32 for d in _param_dtypes), f"{_tag}: parameters should stay float32"


# Gradients are cleared to None: a parameter that takes no part in the loss keeps no gradient
# and is not moved, even by an optimizer with weight decay (a zero gradient would be decayed).
class _WithUnused(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = _tiny_model(8)
        self.unused = nn.Linear(4, 4).to(DEVICE)

    def forward(self, x):
        return self.net(x)


@in_kernel
def _step_with_unused(batch, scaler_args):
    """Your train_step (SGD with weight decay) on a model with a layer outside the loss that holds a
    stale gradient: that layer's gradient and weight after the step."""
    model = _WithUnused()
    model.unused(torch.ones(2, 4, device=DEVICE)).sum().backward()  # a stale gradient on the unused layer
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, weight_decay=0.1)
    scaler = torch.amp.GradScaler(DEVICE.type, **scaler_args)
    train_step(model, batch, F.cross_entropy, optimizer, scaler, device=DEVICE, amp_dtype=AMP_DTYPE, max_grad_norm=1.0)
    return {"grad": model.unused.weight.grad, "weight": model.unused.weight.detach().cpu()}


_unused_before = _WithUnused().unused.weight.detach().cpu()
_seen = _step_with_unused(_batch, _default_scaler())
assert _seen["grad"] is None, (
    "a parameter that takes no part in the loss should end the step with .grad None: "
    "clear gradients with zero_grad(set_to_none=True) before the forward pass"
)
assert torch.equal(_seen["weight"], _unused_before), (
    "a parameter that takes no part in the loss should not move (its stale gradient was not cleared to None)"
)

# A loss that overflows: the step is skipped (parameters unchanged, no NaN) and the scaler
# lowers its scale (scaler.update() after scaler.step()).
_start = _params64(_tiny_model(9).parameters())
_seen = _train_step_on(
    9, _batch, lr=0.1, max_norm=1.0, dtype=AMP_DTYPE, scaler_args={"init_scale": 2.0**10}, loss="inf"
)
for _p, _b in zip(_seen["params"], _start, strict=True):
    assert torch.equal(_p.to("cpu", torch.float64), _b), (
        "when the gradients are inf/NaN the optimizer step must be skipped: use scaler.step(optimizer), "
        "not optimizer.step()"
    )
assert _seen["scale"] == 2.0**9, (
    f"after an overflow scaler.update() halves the scale from 1024 to 512, got {_seen['scale']}: "
    "call scaler.update() after scaler.step()"
)
_out = _seen["returned"]
assert not math.isfinite(_out["grad_norm"]), f"the gradient norm of an overflowing step is not finite, got {_out}"


# The batch is moved to `device` (_OnAnotherDevice and _KindProbe are defined at the top of this cell).
@in_kernel
def _train_step_moves(seed, batch):
    """Your train_step on _tiny_model(seed) behind a _KindProbe, fed a list [inputs, targets] of
    _OnAnotherDevice tensors: the type names the model's input and the loss's targets had."""
    model = _tiny_model(seed)
    probe = _KindProbe()
    probed = nn.Sequential(probe, *model)
    targets_seen = []

    def loss_fn(out, y):
        targets_seen.append(type(y).__name__)
        return F.cross_entropy(out, y)

    x, y = batch
    train_step(
        probed,
        [x.as_subclass(_OnAnotherDevice), y.as_subclass(_OnAnotherDevice)],
        loss_fn,
        torch.optim.SGD(probed.parameters(), lr=0.1),
        torch.amp.GradScaler(DEVICE.type, **_default_scaler()),
        device=DEVICE,
        amp_dtype=AMP_DTYPE,
        max_grad_norm=1.0,
    )
    return {"inputs": probe.seen, "targets": targets_seen}


_seen = _train_step_moves(11, _tiny_batch(5, n=6))
assert _seen["inputs"] == ["Tensor"], (
    f"batch of 6 samples (inputs (6, 8) float32, a list [inputs, targets]) not on `device`: the model should get "
    f"the inputs moved with inputs.to(device, non_blocking=True), got {_seen['inputs']}"
)
assert _seen["targets"] == ["Tensor"], (
    f"batch of 6 samples (targets (6,) int64) not on `device`: loss_fn should get the targets moved with "
    f"targets.to(device, non_blocking=True), got {_seen['targets']}"
)
### END HIDDEN TESTS
print("train_step: tests passed")


# %% [markdown] nbgrader={"grade": false, "grade_id": "task-warmup-cosine", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Task 2 — Learning-rate warmup and cosine decay (2 points)
#
# Almost every modern recipe (transformers, ViTs, large CNNs) uses the same schedule:
#
# - **Linear warmup.** Adam's second-moment estimates are noise for the first few hundred
#   steps; a full learning rate then can push the weights somewhere they never recover from.
#   Ramping up from a small value avoids that.
# - **Cosine decay** from `base_lr` down to `min_lr`, so the last steps fine-tune with small
#   updates.
#
# Write `warmup_cosine_lr(step, *, base_lr, warmup_steps, total_steps, min_lr=0.0) -> float`,
# the learning rate for the optimizer step with 0-based index `step` (the step about to be
# taken: `step=0` is the very first one). It must agree with PyTorch's own schedulers chained
# as
#
# ```python
# SequentialLR(optimizer, [LinearLR(optimizer, start_factor=1 / warmup_steps, end_factor=1.0, total_iters=warmup_steps - 1),
#                          CosineAnnealingLR(optimizer, T_max=total_steps - warmup_steps, eta_min=min_lr)],
#              milestones=[warmup_steps])
# ```
#
# stepped once per optimizer step. In closed form:
#
# - **warmup**, `0 <= step < warmup_steps`: `lr = base_lr * (step + 1) / warmup_steps`. The
#   first step already gets `base_lr / warmup_steps` (not 0: a step with learning rate 0 is a
#   wasted step), and step `warmup_steps - 1` gets exactly `base_lr`.
# - **decay**, `warmup_steps <= step < total_steps`: with
#   `progress = (step - warmup_steps) / (total_steps - warmup_steps)`,
#   `lr = min_lr + (base_lr - min_lr) * 0.5 * (1 + cos(pi * progress))`. Step `warmup_steps`
#   gets exactly `base_lr`.
# - **after the end**, `step >= total_steps`: `lr = min_lr` (the cosine must not rise again).
# - `warmup_steps=0` means no warmup: step 0 gets `base_lr`. `warmup_steps == total_steps`
#   means warmup only.
#
# The steps are Python `int`s; `base_lr` and `min_lr` are Python numbers (`int` or `float`,
# e.g. `min_lr=0`). The result is a Python `float` in every case. Raise `ValueError` for
# invalid arguments: `step < 0`, `warmup_steps < 0`, `total_steps < 1`,
# `warmup_steps > total_steps`, `base_lr <= 0`, `min_lr < 0` or `min_lr > base_lr`.
#
# In a real loop you would hand it to `torch.optim.lr_scheduler.LambdaLR` (which multiplies
# the optimizer's initial learning rate by the factor it returns) or set
# `param_group["lr"]` yourself before each step.
#
# Write it yourself: do not call the course package's schedules (`mlcraft.training`). The
# hidden tests check this.


# %% nbgrader={"grade": false, "grade_id": "warmup-cosine-answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def warmup_cosine_lr(step, *, base_lr, warmup_steps, total_steps, min_lr=0.0):
    """Learning rate for 0-based optimizer step ``step``: linear warmup, then cosine decay to ``min_lr``.

    Raises:
        ValueError: for a negative step or warmup, ``total_steps < 1``, ``warmup_steps > total_steps``,
            ``base_lr <= 0``, or ``min_lr`` outside ``[0, base_lr]``.
    """
    ### BEGIN SOLUTION
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if warmup_steps < 0 or total_steps < 1 or warmup_steps > total_steps:
        raise ValueError(
            f"need 0 <= warmup_steps <= total_steps and total_steps >= 1, got {warmup_steps}, {total_steps}"
        )
    if base_lr <= 0 or not 0 <= min_lr <= base_lr:
        raise ValueError(f"need base_lr > 0 and 0 <= min_lr <= base_lr, got base_lr={base_lr}, min_lr={min_lr}")
    if step >= total_steps:
        return float(min_lr)
    if step < warmup_steps:
        return float(base_lr * (step + 1) / warmup_steps)
    progress = (step - warmup_steps) / (total_steps - warmup_steps)
    return float(min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress)))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-warmup-cosine", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def _torch_schedule(base_lr, warmup_steps, total_steps, min_lr):
    """The learning rate PyTorch's chained schedulers give to each of the steps 0 .. total_steps - 1."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base_lr)
    if warmup_steps == 0:
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps, eta_min=min_lr)
    else:
        linear = torch.optim.lr_scheduler.LinearLR(
            opt, start_factor=1 / warmup_steps, end_factor=1.0, total_iters=warmup_steps - 1
        )
        cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps - warmup_steps, eta_min=min_lr)
        sched = torch.optim.lr_scheduler.SequentialLR(opt, [linear, cosine], milestones=[warmup_steps])
    lrs = []
    for _ in range(total_steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def _ours(base_lr, warmup_steps, total_steps, min_lr, steps):
    return [
        warmup_cosine_lr(s, base_lr=base_lr, warmup_steps=warmup_steps, total_steps=total_steps, min_lr=min_lr)
        for s in steps
    ]


_got = _ours(0.1, 5, 20, 0.0, range(20))
assert all(type(v) is float for v in _got), f"warmup_cosine_lr should return Python floats, got {_got[:3]}"
assert_close(_got, _torch_schedule(0.1, 5, 20, 0.0), rtol=1e-9, atol=1e-12, msg="base_lr=0.1, warmup 5, total 20")
assert_close(_got[0], 0.1 / 5, rtol=1e-12, atol=0.0, msg="step 0 (first warmup step) is base_lr / warmup_steps")
assert_close(_got[4], 0.1, rtol=1e-12, atol=0.0, msg="step warmup_steps - 1 is base_lr")
assert_close(_got[5], 0.1, rtol=1e-12, atol=0.0, msg="step warmup_steps (first cosine step) is base_lr")
_after = _ours(0.1, 5, 20, 0.0, [20, 21, 100])
assert_close(_after, [0.0, 0.0, 0.0], rtol=0.0, atol=1e-15, msg="steps at or after total_steps give min_lr")
### BEGIN HIDDEN TESTS
for _base, _warm, _total, _min in [
    (0.1, 5, 20, 0.0),
    (3e-4, 10, 100, 1e-5),
    (1.0, 1, 10, 0.1),
    (0.5, 0, 7, 0.01),
    (2e-3, 0, 1, 0.0),
    (1e-3, 9, 10, 1e-4),
    (0.2, 3, 4, 0.2),
]:
    _tag = f"base_lr={_base}, warmup_steps={_warm}, total_steps={_total}, min_lr={_min}"
    _want = _torch_schedule(_base, _warm, _total, _min)
    assert_close(_ours(_base, _warm, _total, _min, range(_total)), _want, rtol=1e-9, atol=1e-15, msg=_tag)
    assert_close(
        _ours(_base, _warm, _total, _min, [_total, _total + 1, 10 * _total]),
        [_min] * 3,
        rtol=1e-12,
        atol=0.0,
        msg=f"{_tag}: steps at or after total_steps give min_lr",
    )
    # Exact values at the boundaries.
    _first = _ours(_base, _warm, _total, _min, [0])[0]
    assert_close(_first, _base / _warm if _warm else _base, rtol=1e-12, atol=0.0, msg=f"{_tag}: step 0")
    if _warm:
        assert_close(
            _ours(_base, _warm, _total, _min, [_warm - 1])[0],
            _base,
            rtol=1e-12,
            atol=0.0,
            msg=f"{_tag}: last warmup step",
        )
    if _warm < _total:
        assert_close(
            _ours(_base, _warm, _total, _min, [_warm])[0], _base, rtol=1e-12, atol=0.0, msg=f"{_tag}: first cosine step"
        )
        _last = _ours(_base, _warm, _total, _min, [_total - 1])[0]
        _progress = (_total - 1 - _warm) / (_total - _warm)
        _want_last = _min + (_base - _min) * 0.5 * (1 + math.cos(math.pi * _progress))
        assert_close(_last, _want_last, rtol=1e-12, atol=1e-18, msg=f"{_tag}: step total_steps - 1")

# Warmup only (warmup_steps == total_steps): a straight ramp, then min_lr.
assert_close(_ours(0.4, 4, 4, 0.0, range(6)), [0.1, 0.2, 0.3, 0.4, 0.0, 0.0], rtol=1e-12, atol=1e-15, msg="warmup only")
assert_close(
    _ours(0.3, 1, 1, 0.05, range(3)), [0.3, 0.05, 0.05], rtol=1e-12, atol=0.0, msg="warmup_steps == total_steps == 1"
)

# Integer arguments (base_lr=1, min_lr=0): every phase still returns a Python float.
for _base, _warm, _total, _min in [(1, 2, 5, 0), (2, 0, 3, 1), (1, 2, 2, 1)]:
    _tag = f"int arguments base_lr={_base}, warmup_steps={_warm}, total_steps={_total}, min_lr={_min}"
    _got = _ours(_base, _warm, _total, _min, range(_total + 2))
    assert all(type(v) is float for v in _got), f"{_tag}: every step should give a Python float, got {_got}"
    assert_close(_got[-2:], [float(_min)] * 2, rtol=0.0, atol=0.0, msg=f"{_tag}: steps at or after total_steps")
assert type(warmup_cosine_lr(7, base_lr=1, warmup_steps=2, total_steps=5)) is float, (
    "min_lr omitted (default 0.0), base_lr=1, step 7 after the end: the result should be a Python float"
)
# Monotone during the decay, and never below min_lr.
_decay = _ours(1.0, 10, 200, 0.05, range(10, 300))
assert all(_decay[i] >= _decay[i + 1] for i in range(len(_decay) - 1)), "the learning rate must never rise after warmup"
assert min(_decay) >= 0.05, f"the learning rate must never go below min_lr, got {min(_decay)}"

# Used through LambdaLR, as in a real loop.
_opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.3)
_lambda = torch.optim.lr_scheduler.LambdaLR(
    _opt, lambda s: warmup_cosine_lr(s, base_lr=0.3, warmup_steps=3, total_steps=12, min_lr=0.03) / 0.3
)
_seen = []
for _ in range(15):
    _seen.append(_opt.param_groups[0]["lr"])
    _opt.step()
    _lambda.step()
assert_close(_seen[:12], _torch_schedule(0.3, 3, 12, 0.03), rtol=1e-9, atol=1e-15, msg="through LambdaLR")

for _kwargs in [
    {"step": -1, "base_lr": 0.1, "warmup_steps": 2, "total_steps": 10},
    {"step": 0, "base_lr": 0.1, "warmup_steps": -1, "total_steps": 10},
    {"step": 0, "base_lr": 0.1, "warmup_steps": 11, "total_steps": 10},
    {"step": 0, "base_lr": 0.1, "warmup_steps": 0, "total_steps": 0},
    {"step": 0, "base_lr": 0.0, "warmup_steps": 2, "total_steps": 10},
    {"step": 0, "base_lr": -0.1, "warmup_steps": 2, "total_steps": 10},
    {"step": 0, "base_lr": 0.1, "warmup_steps": 2, "total_steps": 10, "min_lr": -1e-3},
    {"step": 0, "base_lr": 0.1, "warmup_steps": 2, "total_steps": 10, "min_lr": 0.2},
]:
    _kw = dict(_kwargs)
    _step = _kw.pop("step")
    try:
        warmup_cosine_lr(_step, **_kw)
    except ValueError:
        pass
    else:
        raise AssertionError(f"warmup_cosine_lr({_step}, **{_kw}) should raise ValueError")

# Written by hand, not with the course package's schedule.


for _step in (0, 4, 5, 12, 30):
    call_without(
        warmup_cosine_lr,
        _step,
        base_lr=0.1,
        warmup_steps=5,
        total_steps=20,
        min_lr=0.01,
        forbidden=("mlcraft.training.schedules.lr_multiplier", "mlcraft.training.schedules.build_scheduler"),
    )
### END HIDDEN TESTS
print("warmup_cosine_lr: tests passed")


# %% [markdown] nbgrader={"grade": false, "grade_id": "task-accumulated-step", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Task 3 — Gradient accumulation (2 points)
#
# A recipe says "batch size 256" but only 64 samples fit in GPU memory. Gradient accumulation
# splits the batch into `k` equally sized **micro-batches**, runs forward and backward on each,
# lets `backward()` add the gradients up in `.grad`, and takes **one** optimizer step at the
# end. Done right, the step is exactly the step on the whole batch.
#
# The catch is the loss scale. The loss of the whole batch is the mean over all its samples,
# which (for equally sized micro-batches) is the mean of the `k` micro-batch losses. Summing
# `k` gradients without dividing makes the step `k` times too large, which looks like a
# learning rate `k` times too large. So each micro-batch's loss is divided by `k` before its
# `backward()`.
#
# Write `accumulated_step(model, micro_batches, loss_fn, optimizer) -> float`:
#
# - `micro_batches` is a non-empty list of `(inputs, targets)` pairs, all with the same number
#   of samples, already on the model's device; `loss_fn(outputs, targets)` returns the mean
#   loss over its micro-batch; `optimizer` holds all of the model's parameters.
# - Clear the gradients first (`set_to_none=True`, as in Task 1: a parameter that takes no part
#   in the loss must end with `.grad` `None` and must not move), call `backward()` once per
#   micro-batch, and call `optimizer.step()` exactly once, at the end.
# - Afterwards the parameters must equal (to rounding, `1e-12` in `float64`) those after one
#   step on the concatenated batch with the same optimizer, for any optimizer (SGD, Adam...).
# - Return the loss of the whole batch as a Python `float`: the mean of the micro-batch losses
#   (before dividing by `k`).
# - Raise `ValueError` if `micro_batches` is empty.
#
# Keep one graph alive at a time: call `backward()` on each micro-batch's loss before the next
# forward pass (summing the `k` losses and calling `backward()` once gives the same numbers but
# keeps all `k` graphs in memory, which is what accumulation is meant to avoid).
#
# (Two limits of this equivalence, for later: a `BatchNorm` layer normalises each micro-batch
# with its own statistics, and a loss that is a mean over tokens rather than samples needs
# weighting by token counts.)


# %% nbgrader={"grade": false, "grade_id": "accumulated-step-answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def accumulated_step(model, micro_batches, loss_fn, optimizer):
    """One optimizer step over equally sized micro-batches, equal to one step on their concatenation.

    Returns:
        The mean of the micro-batch losses (the loss of the whole batch), as a float.

    Raises:
        ValueError: if ``micro_batches`` is empty.
    """
    ### BEGIN SOLUTION
    if len(micro_batches) == 0:
        raise ValueError("micro_batches is empty: need at least one (inputs, targets) pair")
    k = len(micro_batches)
    optimizer.zero_grad(set_to_none=True)
    total = 0.0
    for inputs, targets in micro_batches:
        loss = loss_fn(model(inputs), targets)
        (loss / k).backward()
        total += loss.item()
    optimizer.step()
    return total / k
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-accumulated-step", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# float64 has no MPS support; elsewhere the test runs on DEVICE.
_DEV64 = DEVICE if DEVICE.type != "mps" else torch.device("cpu")


def _acc_model(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 12), nn.Tanh(), nn.Linear(12, 4)).to(_DEV64, torch.float64)


def _acc_data(seed, n):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 6, generator=g, dtype=torch.float64).to(_DEV64), torch.randint(0, 4, (n,), generator=g).to(
        _DEV64
    )


class _CountingSGD(torch.optim.SGD):
    """SGD that counts the calls of its step()."""

    def __init__(self, params, **kwargs):
        super().__init__(params, **kwargs)
        self.calls = 0

    def step(self, closure=None):
        self.calls += 1
        return super().step(closure)


def _make_opt(name, model):
    """The tests choose an optimizer by name."""
    if name == "SGD":
        return torch.optim.SGD(model.parameters(), lr=0.5)
    if name == "Adam":
        return torch.optim.Adam(model.parameters(), lr=1e-2)
    if name == "SGD with momentum":
        return torch.optim.SGD(model.parameters(), lr=0.3, momentum=0.9, weight_decay=1e-2)
    if name == "counting SGD":
        return _CountingSGD(model.parameters(), lr=0.1)
    raise ValueError(name)


@in_kernel
def _accumulate_on(seed, micro_batches, opt, n_steps=1, stale_batch=None):
    """n_steps calls of your accumulated_step on _acc_model(seed) with the optimizer named opt: the losses
    it returned, the parameters after, and how often optimizer.step() was called (counting SGD only)."""
    model = _acc_model(seed)
    if stale_batch is not None:  # gradients left over from an earlier backward()
        F.cross_entropy(model(stale_batch[0]), stale_batch[1]).backward()
    optimizer = _make_opt(opt, model)
    losses = [accumulated_step(model, micro_batches, F.cross_entropy, optimizer) for _ in range(n_steps)]
    params = {name: p.detach() for name, p in model.named_parameters()}
    return {"losses": losses, "params": params, "step calls": getattr(optimizer, "calls", None)}


def _big_batch_step(seed, x, y, opt, n_steps=1):
    """Reference, computed here: n_steps optimizer steps of _acc_model(seed) on the whole batch; (last loss, parameters)."""
    ref = _acc_model(seed)
    optimizer = _make_opt(opt, ref)
    for _ in range(n_steps):
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(ref(x), y)
        loss.backward()
        optimizer.step()
    return loss.item(), {name: p.detach().clone() for name, p in ref.named_parameters()}


def _check_params(got, want, what):
    assert isinstance(got, dict) and got.keys() == want.keys(), f"{what}: parameters {list(got)} vs {list(want)}"
    for name, w in want.items():
        assert_close(got[name], w, rtol=0.0, atol=1e-12, msg=f"{what}: parameter {name} vs one whole-batch step")


def _check_accumulation(seed, k, micro, opt, what, n_steps=1):
    x, y = _acc_data(seed + 1, k * micro)
    want_loss, want_params = _big_batch_step(seed, x, y, opt, n_steps)
    chunks = list(zip(x.split(micro), y.split(micro), strict=True))
    seen = _accumulate_on(seed, chunks, opt, n_steps)
    got_loss = seen["losses"][-1]
    assert type(got_loss) is float, (
        f"{what}: accumulated_step should return a Python float, got {type(got_loss).__name__}"
    )
    assert_close(got_loss, want_loss, rtol=0.0, atol=1e-12, msg=f"{what}: returned loss vs the whole-batch loss")
    _check_params(seen["params"], want_params, what)


_check_accumulation(0, 2, 8, "SGD", "2 micro-batches of 8, SGD")
### BEGIN HIDDEN TESTS
_check_accumulation(1, 3, 5, "SGD", "3 micro-batches of 5, SGD")
_check_accumulation(2, 4, 4, "SGD", "4 micro-batches of 4, SGD")
_check_accumulation(3, 1, 12, "SGD", "a single micro-batch")
_check_accumulation(4, 3, 5, "Adam", "3 micro-batches of 5, Adam")
_check_accumulation(5, 4, 3, "Adam", "4 micro-batches of 3, Adam, three steps in a row", n_steps=3)
_check_accumulation(
    6, 2, 6, "SGD with momentum", "2 micro-batches of 6, SGD with momentum, three steps in a row", n_steps=3
)

# Stale gradients from an earlier backward() must be cleared first.
_x, _y = _acc_data(8, 12)
_want_loss, _want_params = _big_batch_step(7, _x, _y, "SGD")
_seen = _accumulate_on(7, list(zip(_x.split(4), _y.split(4), strict=True)), "SGD", stale_batch=(_x[:3], _y[:3]))
_check_params(_seen["params"], _want_params, "model with stale gradients")

# optimizer.step() exactly once.
_seen = _accumulate_on(9, list(zip(_x.split(3), _y.split(3), strict=True)), "counting SGD")
assert _seen["step calls"] == 1, (
    f"optimizer.step() should be called once for 4 micro-batches, got {_seen['step calls']}"
)

try:
    _accumulate_on(10, [], "SGD")
except ValueError:
    pass
else:
    raise AssertionError("accumulated_step with no micro-batches should raise ValueError")


# Gradients are cleared to None: a layer outside the loss, holding a stale gradient, keeps no
# gradient and does not move under SGD with weight decay (a zero gradient would be decayed).
class _AccWithUnused(nn.Module):
    def __init__(self, seed):
        super().__init__()
        self.net = _acc_model(seed)
        self.unused = nn.Linear(3, 3).to(_DEV64, torch.float64)

    def forward(self, x):
        return self.net(x)


@in_kernel
def _accumulate_with_unused(micro_batches):
    """Your accumulated_step (SGD with weight decay) on a model with a layer outside the loss that holds a
    stale gradient: that layer's gradient and weight afterwards."""
    model = _AccWithUnused(11)
    model.unused(torch.ones(2, 3, device=_DEV64, dtype=torch.float64)).sum().backward()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, weight_decay=0.1)
    accumulated_step(model, micro_batches, F.cross_entropy, optimizer)
    return {"grad": model.unused.weight.grad, "weight": model.unused.weight.detach()}


_seen = _accumulate_with_unused(list(zip(_x.split(6), _y.split(6), strict=True)))
assert _seen["grad"] is None, (
    "2 micro-batches of 6, a layer outside the loss with a stale gradient: its .grad should be None afterwards "
    "(clear with zero_grad(set_to_none=True))"
)
assert torch.equal(_seen["weight"], _AccWithUnused(11).unused.weight.detach()), (
    "2 micro-batches of 6, a layer outside the loss: SGD with weight decay moved it (its gradient was zeroed, "
    "not set to None)"
)


# One graph at a time: forward, backward, forward, backward..., then one optimizer step.
class _OrderLog(nn.Module):
    """_acc_model(seed), logging "forward" for each forward pass and "backward" when the gradient
    reaches its output."""

    def __init__(self, seed, log):
        super().__init__()
        self.net = _acc_model(seed)
        self.log = log

    def forward(self, x):
        self.log.append("forward")
        out = self.net(x)
        if out.requires_grad:
            out.register_hook(self._backward_seen)
        return out

    def _backward_seen(self, grad):
        self.log.append("backward")


class _LoggingSGD(torch.optim.SGD):
    def __init__(self, params, log, **kwargs):
        super().__init__(params, **kwargs)
        self.log = log

    def step(self, closure=None):
        self.log.append("step")
        return super().step(closure)


@in_kernel
def _accumulation_order(micro_batches):
    """Your accumulated_step on an _OrderLog model with a _LoggingSGD: the order of forward passes, backward
    passes and optimizer steps."""
    log = []
    model = _OrderLog(12, log)
    accumulated_step(model, micro_batches, F.cross_entropy, _LoggingSGD(model.parameters(), log, lr=0.1))
    return log


_seen = _accumulation_order(list(zip(_x.split(4), _y.split(4), strict=True)))
assert _seen == ["forward", "backward"] * 3 + ["step"], (
    "3 micro-batches of 4: each micro-batch's backward() should come before the next forward pass, and "
    f"optimizer.step() once at the end; the order seen was {_seen}"
)
### END HIDDEN TESTS
print("accumulated_step: tests passed")


# %% [markdown] nbgrader={"grade": false, "grade_id": "task-evaluate", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Task 4 — An evaluation loop that does not lie (3 points)
#
# Validation numbers decide which checkpoint ships, so an evaluation loop has to be exact and
# must not disturb training. Four classic mistakes:
#
# - **No `model.eval()`.** Dropout keeps dropping units and BatchNorm normalises with the
#   statistics of the evaluation batch *and updates its running statistics with evaluation
#   data*. The metrics are noisy and the model itself changes.
# - **No `torch.inference_mode()`** (or `torch.no_grad()`). Autograd records a graph for
#   every batch: memory grows, evaluation is slower, and tensors kept for logging hold on to
#   their graphs.
# - **Not restoring the mode.** Evaluation usually runs in the middle of training; leaving the
#   model in eval mode silently turns dropout off for the rest of the run.
# - **Averaging batch means.** If the last batch is smaller (50 samples in batches of 16 gives
#   16, 16, 16 and 2), the mean of the four batch losses gives the last 2 samples the same
#   weight as 16 samples each. Weight each batch by its size.
#
# Write `evaluate(model, batches, loss_fn, device) -> dict` that
#
# - takes `batches`, any iterable of `(inputs, targets)` pairs (a list, a generator, a
#   `DataLoader`), with inputs of shape `(B, ...)` and integer class labels of shape `(B,)`,
#   on any device, and moves each batch to `device` (the model is already there);
# - uses `loss_fn(logits, targets)`, which returns the **mean** loss over its batch;
# - returns `{"loss": ..., "accuracy": ...}` as Python `float`s: the mean loss over **all
#   samples** (each batch weighted by its number of samples), and the fraction of samples whose
#   largest logit is at the true class;
# - keeps the loss sum in `float64` (a `float64` tensor, or Python floats), so that no precision
#   is lost beyond that of `loss_fn`'s own result: the tests compare with the loss of the whole
#   data at once, to `1e-5` (relative) for a `float32` model and to `1e-10` for a `float64`
#   model. The accuracy may be divided in `float32` (as in the lesson): it is checked to `1e-6`;
# - runs every forward pass in eval mode and under `torch.inference_mode()` (or
#   `torch.no_grad()`);
# - leaves the model exactly as it found it: every submodule ends in the mode it had before
#   the call (a model in train mode stays in train mode, one in eval mode stays in eval mode,
#   and a model in train mode with some layers deliberately kept in eval mode, such as frozen
#   BatchNorm layers during fine-tuning, keeps that mix), and no parameter or buffer changes;
#   restore the modes even if a batch raises an exception (`try` / `finally`);
# - raises `ValueError` if there are no batches.
#
# Tip: accumulate sums as tensors on the device and call `.item()` once at the end; calling it
# per batch forces the CPU to wait for the GPU on every batch. A sum kept as a tensor must be
# created on `device` (`torch.zeros((), dtype=torch.float64, device=device)`): on a GPU,
# `total = torch.zeros(()); total += loss` fails, since an in-place update cannot write a GPU
# result into a CPU tensor. (The hidden tests watch for such updates on any machine.)


# %% nbgrader={"grade": false, "grade_id": "evaluate-answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def evaluate(model, batches, loss_fn, device):
    """Mean loss (weighted by batch size) and accuracy of ``model`` over ``batches``.

    Returns:
        ``{"loss": float, "accuracy": float}``.

    Raises:
        ValueError: if ``batches`` yields no batch.
    """
    ### BEGIN SOLUTION
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        count = 0
        with torch.inference_mode():
            for inputs, targets in batches:
                inputs = inputs.to(device, non_blocking=True)
                targets = targets.to(device, non_blocking=True)
                logits = model(inputs)
                n = targets.shape[0]
                loss_sum += loss_fn(logits, targets).double() * n
                correct += (logits.argmax(dim=-1) == targets).sum()
                count += n
    finally:
        for module, training in modes:
            module.training = training
    if count == 0:
        raise ValueError("evaluate got no batches")
    return {"loss": loss_sum.item() / count, "accuracy": correct.item() / count}
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-evaluate", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
class _GradModeProbe(nn.Module):
    """Passes its input through and records whether autograd was recording at that point."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        self.seen.append(torch.is_grad_enabled())
        return x


def _eval_model(seed, modes="train"):
    """Dropout and BatchNorm, with non-trivial running statistics, on DEVICE, in the modes named by `modes`:
    "train", "eval", or "train, BatchNorm frozen" (train mode with the BatchNorm layer in eval mode)."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.5), _GradModeProbe(), nn.Linear(16, 3)
    ).to(DEVICE)
    with torch.no_grad():
        for _ in range(5):
            model(torch.randn(32, 8, device=DEVICE) * 2 + 1)  # train-mode passes fill BatchNorm's running stats
    model[4].seen.clear()
    model.train(modes != "eval")
    if modes == "train, BatchNorm frozen":
        model[1].eval()
    return model


def _eval_data(seed, n):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 8, generator=g) * 2 + 1, torch.randint(0, 3, (n,), generator=g)


@in_kernel
def _evaluate_on(seed, batches, *, modes="train", feed="list", loader_batch_size=None):
    """Your evaluate on _eval_model(seed, modes), fed `batches` as a list, a generator, or (feed="loader") a
    DataLoader over their concatenation: its result or the exception it raised, and the model afterwards
    (each submodule's mode, its state, whether autograd was on in the forward passes, the gradients)."""
    model = _eval_model(seed, modes)
    if feed == "generator":
        source = (batch for batch in batches)
    elif feed == "loader":
        dataset = torch.utils.data.TensorDataset(torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches]))
        source = torch.utils.data.DataLoader(dataset, batch_size=loader_batch_size)
    else:
        source = batches
    try:
        result, raised = evaluate(model, source, F.cross_entropy, DEVICE), None
    except Exception as err:
        result, raised = None, err
    return {
        "result": result,
        "raised": raised,
        "modes": [m.training for m in model.modules()],
        "state": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "autograd": list(model[4].seen),
        "grads": [p.grad for p in model.parameters()],
    }


def _result(seen, what):
    """What evaluate returned; a failure naming the case if it raised."""
    if seen["raised"] is not None:
        raise AssertionError(f"{what}: evaluate raised {seen['raised']!r}") from seen["raised"]
    return seen["result"]


def _reference_eval(seed, x, y):
    """Loss and accuracy of _eval_model(seed) in eval mode on the whole batch at once, computed here."""
    ref = _eval_model(seed, "eval")
    with torch.no_grad():
        logits = ref(x.to(DEVICE))
        loss = F.cross_entropy(logits, y.to(DEVICE)).item()
        acc = (logits.argmax(dim=1).cpu() == y).double().mean().item()
    return loss, acc


# The model's state is compared with the same model built here: bit for bit on the CPU; CUDA
# kernels may differ in the last bits between two processes.
_EVAL_TOL = {"rtol": 0.0, "atol": 0.0} if DEVICE.type == "cpu" else {"rtol": 1e-5, "atol": 1e-6}


def _check_unchanged(seen, seed, what):
    before = _eval_model(seed).state_dict()
    after = seen["state"]
    assert after.keys() == before.keys(), f"{what}: the model's state should keep its entries, got {list(after)}"
    for k, v in before.items():
        assert_close(after[k], v, **_EVAL_TOL, msg=f"{what}: evaluate must not change the model, but {k} changed")


def _check_modes(seen, seed, modes, what):
    want = [m.training for m in _eval_model(seed, modes).modules()]
    assert seen["modes"] == want, (
        f"{what}: every submodule should end in the mode it had before evaluate ({want}), got {seen['modes']}"
    )


_x, _y = _eval_data(1, 50)
_batches = list(zip(_x.split(16), _y.split(16), strict=True))  # 16, 16, 16 and 2 samples
_want_loss, _want_acc = _reference_eval(0, _x, _y)
_seen = _evaluate_on(0, _batches, modes="train")
_res = _result(_seen, "train-mode model")
assert isinstance(_res, dict) and set(_res) == {"loss", "accuracy"}, (
    f"evaluate should return loss and accuracy, got {_res}"
)
assert all(type(v) is float for v in _res.values()), f"both values should be Python floats, got {_res}"
assert_close(_res["loss"], _want_loss, rtol=1e-5, atol=1e-6, msg="loss over 50 samples in batches of 16, 16, 16, 2")
assert_close(_res["accuracy"], _want_acc, rtol=0.0, atol=1e-6, msg="accuracy over 50 samples")
assert _seen["modes"][0], "a model in train mode should be back in train mode after evaluate"
assert all(_seen["modes"]), "every submodule should be back in train mode after evaluate"
_check_unchanged(_seen, 0, "train-mode model")
assert _seen["autograd"] and not any(_seen["autograd"]), (
    "the forward passes should run under torch.inference_mode() or torch.no_grad(); "
    f"autograd was on: {_seen['autograd']}"
)
assert all(g is None for g in _seen["grads"]), "evaluate should not create any gradient"
### BEGIN HIDDEN TESTS
# Deterministic: the same numbers again, from a generator of batches.
_again = _result(_evaluate_on(0, _batches, feed="generator"), "batches from a generator")
assert_close(_again["loss"], _want_loss, rtol=1e-5, atol=1e-6, msg="batches from a generator")
assert_close(_again["accuracy"], _want_acc, rtol=0.0, atol=1e-6, msg="batches from a generator: accuracy")
assert_close(_again["loss"], _res["loss"], rtol=0.0, atol=1e-12, msg="a second call (batches from a generator)")
assert_close(_again["accuracy"], _res["accuracy"], rtol=0.0, atol=1e-12, msg="a second call: accuracy")

# A model in eval mode stays in eval mode.
_seen = _evaluate_on(0, _batches, modes="eval")
_res_eval = _result(_seen, "model already in eval mode")
assert not any(_seen["modes"]), "a model in eval mode should still be in eval mode after evaluate"
assert_close(_res_eval["loss"], _want_loss, rtol=1e-5, atol=1e-6, msg="model already in eval mode")
_check_unchanged(_seen, 0, "model in eval mode")

# A train-mode model with its BatchNorm frozen in eval mode keeps exactly that mix.
_seen = _evaluate_on(0, _batches, modes="train, BatchNorm frozen")
_result(_seen, "model with a frozen BatchNorm")
_check_modes(_seen, 0, "train, BatchNorm frozen", "a frozen BatchNorm (eval mode inside a model in train mode)")
_check_unchanged(_seen, 0, "model with a frozen BatchNorm")

# Modes are restored when a batch fails.
_bad = [*_batches[:2], (torch.randn(4, 5), torch.zeros(4, dtype=torch.long))]  # wrong feature count
_seen = _evaluate_on(0, _bad, modes="train")
assert isinstance(_seen["raised"], RuntimeError), (
    f"a batch with the wrong number of features should raise (a RuntimeError), got {_seen['raised']!r}"
)
assert all(_seen["modes"]), "evaluate should restore the modes even when a batch raises"

# Different batch sizes, weighted by size: a DataLoader with batches of 7 (7 * 7 + 1 = 50 samples).
_seen = _evaluate_on(0, _batches, feed="loader", loader_batch_size=7)
_res7 = _result(_seen, "DataLoader with batch_size=7")
assert_close(_res7["loss"], _want_loss, rtol=1e-5, atol=1e-6, msg="DataLoader with batch_size=7 (last batch 1 sample)")
assert_close(_res7["accuracy"], _want_acc, rtol=0.0, atol=1e-6, msg="DataLoader with batch_size=7: accuracy")
_check_modes(_seen, 0, "train", "DataLoader with batch_size=7")

# Batches of very different sizes, and a second model with a different accuracy.
_x2, _y2 = _eval_data(3, 40)
_want_loss2, _want_acc2 = _reference_eval(2, _x2, _y2)
_uneven = [(_x2[:1], _y2[:1]), (_x2[1:31], _y2[1:31]), (_x2[31:], _y2[31:])]
_seen = _evaluate_on(2, _uneven)
_res2 = _result(_seen, "batches of 1, 30 and 9 samples")
assert_close(_res2["loss"], _want_loss2, rtol=1e-5, atol=1e-6, msg="batches of 1, 30 and 9 samples")
assert_close(_res2["accuracy"], _want_acc2, rtol=0.0, atol=1e-6, msg="batches of 1, 30 and 9 samples: accuracy")
assert not any(_seen["autograd"]), "autograd should be off during evaluation"
_check_unchanged(_seen, 2, "batches of 1, 30 and 9 samples")

_seen = _evaluate_on(2, [])
assert isinstance(_seen["raised"], ValueError), (
    f"evaluate with no batches should raise ValueError, got {_seen['raised']!r}"
)
assert all(_seen["modes"]), "evaluate with no batches should leave the model in train mode"
_seen = _evaluate_on(2, [], feed="generator")
assert isinstance(_seen["raised"], ValueError), (
    f"evaluate with an empty generator of batches should raise ValueError, got {_seen['raised']!r}"
)
assert all(_seen["modes"]), "evaluate with an empty generator should leave the model in train mode"

# A tuple of batches, one of them a single sample.
_res_t = _result(_evaluate_on(2, tuple(_uneven)), "a tuple of batches of 1, 30 and 9 samples")
assert_close(_res_t["loss"], _want_loss2, rtol=1e-5, atol=1e-6, msg="a tuple of batches of 1, 30 and 9 samples")
assert_close(_res_t["accuracy"], _want_acc2, rtol=0.0, atol=1e-6, msg="a tuple of batches: accuracy")

# A float64 model: the sums keep float64 precision (no float32 accumulator, no .float()).
_DEV64E = DEVICE if DEVICE.type != "mps" else torch.device("cpu")  # float64 has no MPS support


@in_kernel
def _evaluate_float64(seed, batches):
    """Your evaluate on _eval_model(seed) converted to float64 (on _DEV64E), batches in float64: its result."""
    model = _eval_model(seed).to(_DEV64E, torch.float64)
    return evaluate(model, [(x.double(), y) for x, y in batches], F.cross_entropy, _DEV64E)


def _reference_eval64(seed, x, y):
    ref = _eval_model(seed, "eval").to(_DEV64E, torch.float64)
    with torch.no_grad():
        logits = ref(x.to(_DEV64E, torch.float64))
        return F.cross_entropy(logits, y.to(_DEV64E)).item(), (logits.argmax(dim=1).cpu() == y).double().mean().item()


_want64 = _reference_eval64(0, _x, _y)
_res64 = _evaluate_float64(0, _batches)
assert_close(
    _res64["loss"], _want64[0], rtol=1e-10, atol=0.0, msg="float64 model, batches of 16, 16, 16, 2 (float64): loss"
)
assert_close(_res64["accuracy"], _want64[1], rtol=0.0, atol=1e-6, msg="float64 model: accuracy")


# Each batch is moved to `device`: batches that play tensors on another device (see the
# train_step tests), and a model and a loss that record what reaches them.
@in_kernel
def _evaluate_moves(seed, batches):
    """Your evaluate on _eval_model(seed) behind a _KindProbe, fed (inputs, targets) pairs of
    _OnAnotherDevice tensors: the type names the model's inputs and the loss's targets had."""
    probe = _KindProbe()
    model = nn.Sequential(probe, *_eval_model(seed))
    targets_seen = []

    def loss_fn(logits, y):
        targets_seen.append(type(y).__name__)
        return F.cross_entropy(logits, y)

    pairs = [(x.as_subclass(_OnAnotherDevice), y.as_subclass(_OnAnotherDevice)) for x, y in batches]
    evaluate(model, pairs, loss_fn, DEVICE)
    return {"inputs": probe.seen, "targets": targets_seen}


# Sums kept as tensors live on `device`: on a GPU, an in-place update of a tensor made without
# device= (so on the CPU) by a tensor computed on the GPU fails. The CPU cannot show that, so a
# TorchFunctionMode watches evaluate for such updates.
class _CpuAccumulatorWatch(torch.overrides.TorchFunctionMode):
    """Records in-place updates (+=, add_, ...) of a tensor that a factory (torch.zeros, torch.tensor...)
    made without a device, by another tensor that was not made that way."""

    _FACTORIES = (torch.zeros, torch.ones, torch.full, torch.empty, torch.tensor, torch.as_tensor, torch.scalar_tensor)
    _IN_PLACE = ("__iadd__", "__isub__", "__imul__", "__itruediv__", "__ior__", "__iand__")

    def __init__(self):
        super().__init__()
        self.host = []  # tensors made on the CPU by default (kept alive, so `is` tests are sound)
        self.updates = []

    def _is_host(self, t):
        return any(t is h for h in self.host)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = getattr(func, "__name__", "")
        tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
        if func in self._FACTORIES and kwargs.get("device") is None:
            self.host.append(out)
        elif func is torch.Tensor.cpu:
            self.host.append(out)  # on the CPU on any machine
        elif func in (torch.Tensor.to, torch.Tensor.cuda) and args:  # moved (a no-op .to returns the same tensor)
            self.host = [h for h in self.host if h is not args[0] and h is not out]
        elif (name.endswith("_") and not name.startswith("_")) or name in self._IN_PLACE:
            if args and self._is_host(args[0]) and any(not self._is_host(a) for a in tensors[1:]):
                self.updates.append(name)
        elif isinstance(out, torch.Tensor) and tensors and all(self._is_host(a) for a in tensors):
            self.host.append(out)  # computed from CPU tensors only: on the CPU too
        return out


@in_kernel
def _evaluate_watched(seed, batches):
    """Your evaluate on _eval_model(seed) under a _CpuAccumulatorWatch: the in-place updates it saw."""
    model = _eval_model(seed)
    watch = _CpuAccumulatorWatch()
    with watch:
        evaluate(model, batches, F.cross_entropy, DEVICE)
    return watch.updates


_updates = _evaluate_watched(0, _batches)
assert _updates == [], (
    "batches of 16, 16, 16, 2: evaluate updated in place a tensor created without device= (so on the CPU) with "
    f"values computed on `device` ({_updates}); on a GPU that fails. Create sums with device=device"
)

_seen = _evaluate_moves(2, _uneven)
assert _seen["inputs"] == ["Tensor"] * 3, (
    "batches of 1, 30 and 9 samples (inputs (B, 8) float32) not on `device`: the model should get each batch's "
    f"inputs moved with inputs.to(device), got {_seen['inputs']}"
)
assert _seen["targets"] == ["Tensor"] * 3, (
    "batches of 1, 30 and 9 samples (targets (B,) int64) not on `device`: loss_fn should get each batch's "
    f"targets moved with targets.to(device), got {_seen['targets']}"
)
### END HIDDEN TESTS
print("evaluate: tests passed")


# %% [markdown] nbgrader={"grade": false, "grade_id": "task-checkpoint", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Task 5 — Checkpoints you can resume from (3 points)
#
# Long runs get interrupted: pre-empted cloud machines, out-of-memory errors, a Colab session
# that times out. A checkpoint must let the run continue **as if nothing had happened**, and
# that takes more than the model's weights:
#
# - the **model** state (`model.state_dict()`);
# - the **optimizer** state: Adam's moment estimates and step counts, SGD's momentum buffers.
#   Restarting Adam from scratch throws away its estimates and causes a loss spike;
# - the **GradScaler** state: its current scale and growth tracker;
# - the **step** counter (the learning-rate schedule depends on it);
# - every **random number generator**: Python's `random`, NumPy's global generator, PyTorch's
#   CPU generator and, when CUDA is available, every CUDA generator
#   (`torch.cuda.get_rng_state_all()` / `torch.cuda.set_rng_state_all(...)`). Dropout masks,
#   data shuffling and augmentation all draw from them; without them a resumed run follows a
#   different path.
#
# Two more production rules:
#
# - **Write atomically.** A crash or a full disk half way through `torch.save(..., path)`
#   leaves a corrupt file *in place of the previous good checkpoint*. Write to a temporary file
#   **in the same folder** (`os.replace` is only atomic within one file system), then
#   `os.replace(temporary, path)`: `path` then always holds either the old or the new complete
#   checkpoint. No temporary file may be left behind, whether the save succeeds or fails (a
#   failed save removes its temporary file before the exception propagates: a disk that filled
#   up must not stay full of half-written checkpoints).
# - **Load with `torch.load(path, weights_only=True)`.** A checkpoint is a pickle, and
#   unpickling an untrusted file can run arbitrary code; `weights_only=True` only accepts
#   tensors, numbers, strings and plain containers (dicts, lists, tuples). It refuses NumPy
#   arrays, so store NumPy's generator state in a safe form: `np.random.get_state()` returns
#   a tuple `(name, keys, pos, has_gauss, cached_gaussian)` whose `keys` is a `uint32` array;
#   convert it to a tensor or a list, and back to a `uint32` array when restoring. Python's
#   `random.getstate()` is already made of tuples and ints.
#
# Write
#
# ```python
# save_checkpoint(path, model, optimizer, scaler, step) -> None
# load_checkpoint(path, model, optimizer, scaler) -> int
# ```
#
# - `path` is a `str` or a `pathlib.Path`; its folder exists. `step` is a Python `int`. `scaler` is a
#   `torch.amp.GradScaler`, enabled or not (a disabled one has an empty state, and loading an
#   empty state into it is fine).
# - `save_checkpoint` writes one file with `torch.save`: a dict with the keys `"model"`,
#   `"optimizer"`, `"scaler"`, `"step"` (an `int`) and `"rng"` (the generator states, in any
#   layout you choose), atomically as described above. If saving fails, the exception
#   propagates and a checkpoint that was at `path` before is untouched.
# - `load_checkpoint` reads it with `torch.load(path, map_location="cpu", weights_only=True)`,
#   loads the three states into the given (freshly created) model, optimizer and scaler,
#   restores every generator, and returns the step as an `int`. `map_location="cpu"` lets a
#   checkpoint written on a GPU load on any machine. It never loads a file in a way that could
#   run code stored in it: pass `weights_only=True` explicitly (its default depends on the
#   PyTorch version and on the environment variable `TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`).
# - Decide whether there are CUDA generators with `torch.cuda.is_available()`. (The hidden tests
#   check the CUDA part on any machine, with stand-ins for `torch.cuda.is_available`,
#   `device_count`, `get_rng_state(_all)` and `set_rng_state(_all)` that pretend to have two GPUs.)
#
# The test trains a model with dropout and Adam for 3 steps, saves, trains 3 more steps,
# then builds a new model and optimizer (different initial weights), loads, trains 3 steps and
# expects the **same losses, bit for bit** on the CPU.
#
# Write both yourself: do not call the course package's checkpoint functions
# (`mlcraft.training`). The hidden tests check this.


# %% nbgrader={"grade": false, "grade_id": "checkpoint-answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def save_checkpoint(path, model, optimizer, scaler, step):
    """Atomically write model, optimizer, scaler, step and RNG states to ``path`` (a weights_only-safe file)."""
    ### BEGIN SOLUTION
    path = Path(path)
    name, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    rng = {
        "python": random.getstate(),
        "numpy": {
            "name": str(name),
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "step": int(step),
        "rng": rng,
    }
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # only still there if something failed
    ### END SOLUTION


def load_checkpoint(path, model, optimizer, scaler):
    """Restore model, optimizer, scaler and RNG states from ``path``; return the saved step."""
    ### BEGIN SOLUTION
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scaler.load_state_dict(ckpt["scaler"])
    rng = ckpt["rng"]
    random.setstate(rng["python"])
    npy = rng["numpy"]
    np.random.set_state(
        (npy["name"], npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"], npy["cached_gaussian"])
    )
    torch.set_rng_state(rng["torch"])
    if torch.cuda.is_available() and rng["cuda"]:
        torch.cuda.set_rng_state_all(rng["cuda"])
    return int(ckpt["step"])
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-checkpoint", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# The spec covers CUDA's generators, not Apple's: on MPS this test trains on the CPU.
_CK_DEV = DEVICE if DEVICE.type in ("cpu", "cuda") else torch.device("cpu")
_g = torch.Generator().manual_seed(0)
_CK_X = torch.randn(64, 8, generator=_g)
_CK_Y = (_CK_X @ torch.randn(8, 3, generator=_g)).argmax(dim=1)


def _ck_setup(seed, init_scale):
    """Model with dropout, Adam, and an enabled GradScaler whose scale grows every 2 steps."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Dropout(0.3), nn.Linear(32, 3)).to(_CK_DEV)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    scaler = torch.amp.GradScaler(_CK_DEV.type, init_scale=init_scale, growth_interval=2)
    return model, opt, scaler


def _ck_train(model, opt, scaler, n_steps):
    """Train n_steps; every generator matters: Python picks the batch, NumPy adds noise, torch drops units."""
    model.train()
    losses = []
    for _ in range(n_steps):
        idx = random.sample(range(64), 16)
        noise = torch.from_numpy(np.random.normal(0.0, 0.1, size=(16, 8)).astype(np.float32))
        x, y = (_CK_X[idx] + noise).to(_CK_DEV), _CK_Y[idx].to(_CK_DEV)
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        losses.append(loss.item())
    return torch.tensor(losses, dtype=torch.float64)


def _cpu_state(module):
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}


def _read_back(path):
    """The file as torch.load(path, weights_only=True) reads it: its type, keys and step; or the exception."""
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        return err
    if not isinstance(raw, dict):
        return {"type": type(raw).__name__}
    return {"type": "dict", "keys": sorted(str(k) for k in raw), "step": raw.get("step")}


@in_kernel
def _interrupted_run():
    """Seeded training: 3 steps, your save_checkpoint, 3 more steps (every generator moves on), then a new
    model, optimizer and scaler, your load_checkpoint and 3 steps: what your functions returned, the folder
    after saving, the losses and scale after resuming, and the file as torch.load(weights_only=True) reads it."""
    random.seed(0)
    np.random.seed(0)
    model, opt, scaler = _ck_setup(0, init_scale=2.0**10)
    _ck_train(model, opt, scaler, 3)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "ckpt.pt"
        saved = save_checkpoint(path, model, opt, scaler, 3)
        files = sorted(os.listdir(folder))
        _ck_train(model, opt, scaler, 3)  # the run goes on; then it is interrupted
        model2, opt2, scaler2 = _ck_setup(123, init_scale=2.0**4)  # different weights, fresh optimizer and scaler
        step = load_checkpoint(path, model2, opt2, scaler2)
        losses = _ck_train(model2, opt2, scaler2, 3)
        return {
            "saved": saved,
            "files": files,
            "step": step,
            "losses": losses,
            "scale": scaler2.get_scale(),
            "file": _read_back(path),
        }


def _uninterrupted_run():
    """The reference, computed here: the same seeded run without interruption; losses of steps 4-6, final scale."""
    random.seed(0)
    np.random.seed(0)
    model, opt, scaler = _ck_setup(0, init_scale=2.0**10)
    _ck_train(model, opt, scaler, 3)
    losses = _ck_train(model, opt, scaler, 3)
    return losses, scaler.get_scale()


# Bit for bit on the CPU; CUDA kernels may differ in the last bits between calls.
_CK_TOL = {"rtol": 0.0, "atol": 0.0} if _CK_DEV.type == "cpu" else {"rtol": 1e-5, "atol": 1e-6}

_want, _want_scale = _uninterrupted_run()
_seen = _interrupted_run()
assert _seen["saved"] is None, f"save_checkpoint should return None, got {_seen['saved']!r}"
assert _seen["files"] == ["ckpt.pt"], (
    f"the folder should hold only ckpt.pt after saving (no temporary file left), got {_seen['files']}"
)
_step = _seen["step"]
assert type(_step) is int and _step == 3, f"load_checkpoint should return the saved step 3 as an int, got {_step!r}"
assert_close(_seen["losses"], _want, **_CK_TOL, msg="losses of the 3 steps after resuming vs the uninterrupted run")
assert _seen["scale"] == _want_scale, (
    f"the GradScaler's scale after resuming should be {_want_scale}, got {_seen['scale']}"
)
_file = _seen["file"]
assert not isinstance(_file, BaseException), (
    f"torch.load(path, weights_only=True) cannot read the checkpoint: {_file!r}"
)
assert _file["type"] == "dict", f"the checkpoint should be a dict, got {_file['type']}"
_missing = {"model", "optimizer", "scaler", "step", "rng"} - set(_file["keys"])
assert not _missing, f"the checkpoint is missing the keys {sorted(_missing)}"
assert _file["step"] == 3, f"checkpoint['step'] should be 3, got {_file['step']!r}"


### BEGIN HIDDEN TESTS
# Every generator is restored, each on its own. has_gauss: NumPy caches the second of a pair of
# normal draws; after an odd number of draws that cache is part of the state.
def _draws():
    out = {
        "Python's random": [random.random() for _ in range(3)],
        "NumPy's global generator": np.random.rand(3).tolist(),
        "NumPy's normal draws (cached gaussian)": np.random.standard_normal(3).tolist(),
        "torch on the CPU": torch.rand(3).tolist(),
    }
    if torch.cuda.is_available():
        out["torch on CUDA"] = torch.rand(3, device="cuda").tolist()
    return out


def _seed_for_rng_test():
    """Seed every generator, leave a cached gaussian in NumPy's state, build the model of the test."""
    random.seed(11)
    np.random.seed(11)
    torch.manual_seed(11)
    np.random.standard_normal(1)  # leaves a cached gaussian in NumPy's state
    return _ck_setup(5, init_scale=2.0**10)


@in_kernel
def _draws_after_resume():
    """Your save_checkpoint (to a str path), draws and re-seeding that move every generator elsewhere, your
    load_checkpoint into a new model: the step it returned, the draws after loading, the new model's state."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "rng.pt")  # a str path works too
        model, opt, scaler = _seed_for_rng_test()
        save_checkpoint(path, model, opt, scaler, 7)
        _draws()
        random.seed(99)
        np.random.seed(99)
        torch.manual_seed(99)
        np.random.standard_normal(2)
        model2, opt2, scaler2 = _ck_setup(6, init_scale=2.0**10)
        step = load_checkpoint(path, model2, opt2, scaler2)
        return {"step": step, "draws": _draws(), "model": _cpu_state(model2)}


_model, _, _ = _seed_for_rng_test()
_want_draws = _draws()  # what every generator gives right after the state that was saved
_seen = _draws_after_resume()
assert _seen["step"] == 7, f"load_checkpoint should return the saved step 7, got {_seen['step']!r}"
for _name, _vals in _want_draws.items():
    _got = _seen["draws"].get(_name)
    assert _got == _vals, f"{_name} should be restored by load_checkpoint: {_got} vs {_vals}"
for _k, _w in _cpu_state(_model).items():
    assert _k in _seen["model"] and torch.equal(_seen["model"][_k], _w), f"model state {_k} should be restored"


# Optimizer and scaler state in detail: Adam's moments and step, the scale and growth tracker.
def _trained_for_state_test():
    random.seed(1)
    np.random.seed(1)
    model, opt, scaler = _ck_setup(1, init_scale=2.0**10)
    _ck_train(model, opt, scaler, n_steps=3)
    return model, opt, scaler


@in_kernel
def _restored_states():
    """Your save_checkpoint after 3 training steps, your load_checkpoint into a new optimizer and scaler:
    the optimizer's and the scaler's state after loading."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "opt.pt"
        model, opt, scaler = _trained_for_state_test()
        save_checkpoint(path, model, opt, scaler, 3)
        model2, opt2, scaler2 = _ck_setup(2, init_scale=2.0**3)
        load_checkpoint(path, model2, opt2, scaler2)
        return {"scaler": scaler2.state_dict(), "optimizer": opt2.state_dict()["state"]}


_, _opt, _scaler = _trained_for_state_test()
_seen = _restored_states()
assert _seen["scaler"] == _scaler.state_dict(), (
    f"the GradScaler state should be restored: {_seen['scaler']} vs {_scaler.state_dict()}"
)
_s1, _s2 = _opt.state_dict()["state"], _seen["optimizer"]
assert _s1.keys() == _s2.keys() and _s2, "the optimizer state (Adam's moments) should be restored"
for _i in _s1:
    for _key in ("step", "exp_avg", "exp_avg_sq"):
        assert _key in _s2[_i], f"optimizer state {_key} of parameter {_i} should be restored"
        assert_close(
            torch.as_tensor(_s2[_i][_key]).cpu(),
            torch.as_tensor(_s1[_i][_key]).cpu(),
            **_CK_TOL,
            msg=f"optimizer state {_key} of parameter {_i} should be restored",
        )


# A disabled scaler (bfloat16 training) round-trips too.
@in_kernel
def _disabled_scaler_round_trip():
    """Your save_checkpoint and load_checkpoint with a disabled GradScaler: the step loaded, and the file as
    torch.load(weights_only=True) reads it."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bf16.pt"
        model, opt, _ = _ck_setup(3, init_scale=1.0)
        save_checkpoint(path, model, opt, torch.amp.GradScaler(_CK_DEV.type, enabled=False), 12)
        model2, opt2, _ = _ck_setup(4, init_scale=1.0)
        step = load_checkpoint(path, model2, opt2, torch.amp.GradScaler(_CK_DEV.type, enabled=False))
        return {"step": step, "file": _read_back(path)}


_seen = _disabled_scaler_round_trip()
assert _seen["step"] == 12, (
    f"a disabled GradScaler: load_checkpoint should return the saved step 12, got {_seen['step']!r}"
)
assert not isinstance(_seen["file"], BaseException), (
    f"a disabled GradScaler: torch.load(path, weights_only=True) cannot read the checkpoint: {_seen['file']!r}"
)


# Atomic write 1: the file is written elsewhere in the same folder and moved into place.
@in_kernel
def _moves_while_saving():
    """Your save_checkpoint with os.replace and os.rename watched: every move (source, destination), resolved,
    the checkpoint's resolved path, and the folder afterwards."""
    moves = []
    real_replace, real_rename = os.replace, os.rename

    def record_replace(src, dst, *args, **kwargs):
        moves.append((os.fspath(src), os.fspath(dst)))
        return real_replace(src, dst, *args, **kwargs)

    def record_rename(src, dst, *args, **kwargs):
        moves.append((os.fspath(src), os.fspath(dst)))
        return real_rename(src, dst, *args, **kwargs)

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "atomic.pt"
        model, opt, scaler = _ck_setup(7, init_scale=2.0**10)
        os.replace, os.rename = record_replace, record_rename
        try:
            save_checkpoint(path, model, opt, scaler, 1)
        finally:
            os.replace, os.rename = real_replace, real_rename
        return {
            "target": str(path.resolve()),
            "moves": [(str(Path(src).resolve()), str(Path(dst).resolve())) for src, dst in moves],
            "files": sorted(os.listdir(folder)),
        }


_seen = _moves_while_saving()
_target = Path(_seen["target"])
assert any(
    Path(_dst) == _target and Path(_src).parent == _target.parent and Path(_src) != _target
    for _src, _dst in _seen["moves"]
), (
    "save_checkpoint should write a temporary file in the checkpoint's folder and move it into place with "
    f"os.replace(temporary, path); moves seen: {_seen['moves']}"
)
assert _seen["files"] == ["atomic.pt"], f"no temporary file should be left, got {_seen['files']}"


# Atomic write 2: a save that fails half way (here a model whose extra state cannot be
# serialised, as a full disk would fail) leaves the previous checkpoint intact.
class _Unserialisable:
    def __reduce__(self):
        raise OSError("simulated failure while writing the checkpoint")


class _BrokenModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(8, 3)

    def get_extra_state(self):
        return _Unserialisable()

    def set_extra_state(self, state):
        pass


@in_kernel
def _failed_save_over_good():
    """Your save_checkpoint of step 41, then a save of a model that cannot be serialised to the same path:
    the exception that second save raised (None if none), the file then at the path (or the exception
    reading it raised), and the folder's files."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "ckpt.pt"
        model, opt, scaler = _ck_setup(8, init_scale=2.0**10)
        save_checkpoint(path, model, opt, scaler, 41)
        broken = _BrokenModel()
        raised = None
        try:
            save_checkpoint(path, broken, torch.optim.Adam(broken.parameters()), scaler, 42)
        except Exception as err:
            raised = err
        try:
            kept = torch.load(path, map_location="cpu", weights_only=True)
            kept = {"step": kept["step"], "model": {k: v.cpu() for k, v in kept["model"].items()}}
        except Exception as err:
            kept = err
        return raised, kept, sorted(os.listdir(folder))


_model, _, _ = _ck_setup(8, init_scale=2.0**10)
_raised, _kept, _files = _failed_save_over_good()
assert _raised is not None, "a save that fails should raise, not hide the error"
assert not isinstance(_kept, BaseException), (
    f"a failed save must leave the previous checkpoint intact (write to a temporary file, then os.replace); "
    f"reading it failed: {_kept!r}"
)
assert _kept["step"] == 41, (
    "a failed save must leave the previous checkpoint intact (write to a temporary file, then os.replace)"
)
for _k, _v in _cpu_state(_model).items():
    assert _k in _kept["model"] and torch.equal(_kept["model"][_k], _v), f"the previous checkpoint's {_k} was damaged"
assert _files == ["ckpt.pt"], (
    f"a save that failed (a model that cannot be serialised) should remove its temporary file; the folder holds {_files}"
)


# Loading never runs code stored in the file.
class _Exploit:
    """Code stored in a checkpoint: unpickling this creates the folder `marker`."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


@in_kernel
def _stored_code_ran(force_no_weights_only=False):
    """Your load_checkpoint on a file whose "rng" entry runs code when unpickled (with the environment variable
    TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 if force_no_weights_only): whether that code ran, and the exception
    load_checkpoint raised (None if none)."""
    saved_env = os.environ.get("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
    if force_no_weights_only:
        os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"
    try:
        return _load_stored_code()
    finally:
        if saved_env is None:
            os.environ.pop("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", None)
        else:
            os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = saved_env


def _load_stored_code():
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "evil.pt"
        marker = os.path.join(folder, "stored-code-ran")
        model, opt, scaler = _ck_setup(9, init_scale=2.0**10)
        state = {
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "scaler": scaler.state_dict(),
            "step": 1,
            "rng": _Exploit(marker),
        }
        torch.save(state, path)
        refused = None
        try:
            load_checkpoint(path, model, opt, scaler)
        except Exception as err:
            refused = err  # the expected outcome: weights_only=True refuses the file
        return os.path.exists(marker), refused


_ran, _refused = _stored_code_ran()
assert _ran is False, "load_checkpoint ran code stored in the checkpoint: load with torch.load(..., weights_only=True)"
_ran, _refused = _stored_code_ran(force_no_weights_only=True)
assert _ran is False, (
    "with TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 in the environment, load_checkpoint ran code stored in the checkpoint: "
    "pass weights_only=True explicitly (the default changes with this variable and with the PyTorch version)"
)


# map_location="cpu": torch.load is watched while your load_checkpoint runs.
@in_kernel
def _load_calls():
    """Your save_checkpoint then load_checkpoint with torch.load watched: for each torch.load call, its
    map_location (a str; a device as str(device); anything else by its type's name) and weights_only."""
    calls = []
    real_load = torch.load

    def watched_load(*args, **kwargs):
        where = kwargs.get("map_location", args[1] if len(args) > 1 else None)
        if isinstance(where, torch.device):
            where = str(where)
        elif where is not None and not isinstance(where, str):
            where = type(where).__name__
        calls.append({"map_location": where, "weights_only": kwargs.get("weights_only")})
        return real_load(*args, **kwargs)

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "where.pt"
        model, opt, scaler = _ck_setup(12, init_scale=2.0**10)
        save_checkpoint(path, model, opt, scaler, 4)
        torch.load = watched_load
        try:
            load_checkpoint(path, model, opt, scaler)
        finally:
            torch.load = real_load
    return calls


_calls = _load_calls()
assert _calls, "load_checkpoint should read the file with torch.load(path, map_location='cpu', weights_only=True)"
for _call in _calls:
    assert _call["map_location"] == "cpu", (
        f"load_checkpoint should call torch.load with map_location='cpu' (a GPU checkpoint must load anywhere), "
        f"got the call {_call}"
    )


# Every CUDA generator, checked on any machine: torch.cuda's availability and generator functions
# are replaced by fakes that pretend to have two GPUs, each with its own generator state.
_FAKE_CUDA_STATES = [torch.arange(16, dtype=torch.uint8) + 20 * i for i in range(2)]


@in_kernel
def _fake_cuda_round_trip():
    """Your save_checkpoint, then both fake CUDA generators move on, then your load_checkpoint, all with
    torch.cuda.is_available, device_count, get_rng_state(_all) and set_rng_state(_all) replaced by fakes for two
    GPUs whose states start at _FAKE_CUDA_STATES: the fake states after loading, and what loading raised."""
    states = {i: state.clone() for i, state in enumerate(_FAKE_CUDA_STATES)}

    def index(device="cuda"):
        if isinstance(device, int):
            return device
        return torch.device(device).index or 0

    def get_rng_state(device="cuda"):
        return states[index(device)].clone()

    def set_rng_state(new_state, device="cuda"):
        states[index(device)] = new_state

    def get_rng_state_all():
        return [states[i].clone() for i in sorted(states)]

    def set_rng_state_all(new_states):
        for i, new_state in enumerate(new_states):
            states[i] = new_state

    fakes = {
        "is_available": lambda: True,
        "device_count": lambda: 2,
        "get_rng_state": get_rng_state,
        "set_rng_state": set_rng_state,
        "get_rng_state_all": get_rng_state_all,
        "set_rng_state_all": set_rng_state_all,
    }
    torch.manual_seed(15)
    model, model2 = nn.Linear(4, 2), nn.Linear(4, 2)
    opt, opt2 = torch.optim.Adam(model.parameters()), torch.optim.Adam(model2.parameters())
    scaler, scaler2 = torch.amp.GradScaler("cpu", enabled=False), torch.amp.GradScaler("cpu", enabled=False)
    real = {name: getattr(torch.cuda, name) for name in fakes}
    raised = None
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "gpus.pt"
        for name, fake in fakes.items():
            setattr(torch.cuda, name, fake)
        try:
            save_checkpoint(path, model, opt, scaler, 2)
            for i in states:  # both generators move on after the save
                states[i] = torch.full((16,), 200 + i, dtype=torch.uint8)
            try:
                load_checkpoint(path, model2, opt2, scaler2)
            except Exception as err:
                raised = err
        finally:
            for name, function in real.items():
                setattr(torch.cuda, name, function)
    return {"states": [states.get(i) for i in range(2)], "raised": raised}


_seen = _fake_cuda_round_trip()
assert _seen["raised"] is None, (
    f"with two (fake) CUDA devices, load_checkpoint raised {_seen['raised']!r}"
)
for _i, (_got, _want) in enumerate(zip(_seen["states"], _FAKE_CUDA_STATES, strict=True)):
    assert isinstance(_got, torch.Tensor) and torch.equal(_got, _want), (
        f"with two (fake) CUDA devices, the generator of cuda:{_i} should be restored to its saved state "
        f"{_want.tolist()} (torch.cuda.get_rng_state_all() / set_rng_state_all()), got {_got!r}"
    )

# Written by hand, not with the course package's checkpoint functions.


@in_kernel
def _save_and_load():
    """Your save_checkpoint of step 5, then your load_checkpoint: the step it returned."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "own.pt"
        model, opt, scaler = _ck_setup(10, init_scale=2.0**10)
        save_checkpoint(path, model, opt, scaler, 5)
        return load_checkpoint(path, model, opt, scaler)


_ck_library = (
    "mlcraft.training.checkpoint.save_checkpoint",
    "mlcraft.training.checkpoint.load_checkpoint",
    "mlcraft.training.checkpoint.capture_rng_state",
    "mlcraft.training.checkpoint.restore_rng_state",
)
_step = call_without(_save_and_load, forbidden=_ck_library)
assert _step == 5, f"load_checkpoint should return the saved step 5, got {_step!r}"
### END HIDDEN TESTS
print("save_checkpoint / load_checkpoint: tests passed")


# %% [markdown] nbgrader={"grade": false, "grade_id": "task-early-stopping", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Task 6 — Early stopping (2 points)
#
# Training past the point where the validation metric stops improving wastes compute and,
# without a best-checkpoint rule, ships an overfitted model. Early stopping watches one
# validation metric after each evaluation and says when to stop.
#
# Write a class `EarlyStopping(patience, mode="min", min_delta=0.0)`:
#
# - `mode="min"` for a metric that should go down (a loss), `mode="max"` for one that should
#   go up (an accuracy).
# - A value is an **improvement** if it is better than the best value so far by **more than**
#   `min_delta`: `value < best - min_delta` in `"min"` mode, `value > best + min_delta` in
#   `"max"` mode. A value equal to the best is not an improvement. The first value is always
#   an improvement, unless it is `NaN`.
# - `NaN` (a diverged run) is never an improvement and never becomes the best value.
# - `step(value) -> bool` records one value (a Python `float`). On an improvement it makes
#   `value` the new best, resets the count of bad evaluations to 0 and returns `False`.
#   Otherwise it adds 1 to the count of bad evaluations and returns `True` if that count has
#   reached `patience` (stop training), else `False`. So with `patience=2`, the second
#   non-improving value in a row returns `True`; with `patience=0`, the first one does.
# - Attributes `best` (the best value so far, `None` before any improvement) and `bad_evals`
#   (the current count of bad evaluations, an `int`; the same names as in the course package's
#   `EarlyStopping` that the lesson uses) are kept up to date.
# - The constructor raises `ValueError` if `mode` is not `"min"` or `"max"`, if `patience` is
#   negative, or if `min_delta` is negative.
#
# Write it yourself: do not use or subclass the course package's `EarlyStopping`
# (`mlcraft.training`). The hidden tests check this.


# %% nbgrader={"grade": false, "grade_id": "early-stopping-answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
class EarlyStopping:
    """Stop when a validation metric has not improved by more than ``min_delta`` for ``patience`` steps."""

    def __init__(self, patience, mode="min", min_delta=0.0):
        ### BEGIN SOLUTION
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if patience < 0:
            raise ValueError(f"patience must be >= 0, got {patience}")
        if min_delta < 0:
            raise ValueError(f"min_delta must be >= 0, got {min_delta}")
        self.patience = patience
        self.mode = mode
        self.min_delta = min_delta
        self.best = None
        self.bad_evals = 0
        ### END SOLUTION

    def step(self, value):
        """Record ``value``; return True when training should stop."""
        ### BEGIN SOLUTION
        value = float(value)
        if math.isnan(value):
            improved = False
        elif self.best is None:
            improved = True
        elif self.mode == "min":
            improved = value < self.best - self.min_delta
        else:
            improved = value > self.best + self.min_delta
        if improved:
            self.best = value
            self.bad_evals = 0
            return False
        self.bad_evals += 1
        return self.bad_evals >= self.patience
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-early-stopping", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
@in_kernel
def _run_stopper(kwargs, *runs):
    """Your EarlyStopping(**kwargs), fed each list of values in `runs` in turn: its (best, bad_evals) before
    any value, then (decisions, best, bad_evals) after each list."""
    stopper = EarlyStopping(**kwargs)
    seen = [(stopper.best, stopper.bad_evals)]
    for values in runs:
        decisions = [stopper.step(v) for v in values]
        seen.append((decisions, stopper.best, stopper.bad_evals))
    return seen


_, (_decisions, _best, _bad) = _run_stopper({"patience": 2}, [1.0, 0.8, 0.9, 0.85, 0.7, 0.75, 0.8])
assert _decisions == [False, False, False, True, False, False, True], (
    f"patience=2, mode='min' on [1.0, 0.8, 0.9, 0.85, 0.7, 0.75, 0.8] should give "
    f"[False, False, False, True, False, False, True], got {_decisions}"
)
assert _best == 0.7, f"the best value should be 0.7, got {_best}"
assert _bad == 2, f"after two non-improving values bad_evals should be 2, got {_bad}"

_, (_decisions, _best, _) = _run_stopper({"patience": 1, "mode": "max"}, [0.5, 0.6, 0.55])
assert _decisions == [False, False, True], f"patience=1, mode='max' on [0.5, 0.6, 0.55]: got {_decisions}"
assert _best == 0.6, f"mode='max': the best value should be 0.6, got {_best}"
### BEGIN HIDDEN TESTS
(_best, _bad), *_ = _run_stopper({"patience": 3})
assert _best is None, f"best should be None before the first value, got {_best!r}"
assert _bad == 0, f"bad_evals should start at 0, got {_bad!r}"

# A value equal to the best is not an improvement.
_, (_decisions, _, _) = _run_stopper({"patience": 2}, [1.0, 1.0, 1.0])
assert _decisions == [False, False, True], f"ties with the best value are not improvements, got {_decisions}"
_, (_decisions, _, _) = _run_stopper({"patience": 2, "mode": "max"}, [0.9, 0.9, 0.9])
assert _decisions == [False, False, True], f"mode='max': ties are not improvements, got {_decisions}"

# min_delta: an improvement must beat the best by more than min_delta.
_, (_decisions, _best, _bad) = _run_stopper({"patience": 2, "min_delta": 0.1}, [1.0, 0.95, 0.85])
assert _decisions == [False, False, False], f"min_delta=0.1: 0.95 is no improvement, 0.85 is; got {_decisions}"
assert _best == 0.85 and _bad == 0, f"best 0.85, count reset; got {_best}, {_bad}"
_, (_decisions, _, _) = _run_stopper({"patience": 1, "min_delta": 0.25}, [1.0, 0.75])
assert _decisions == [False, True], f"min_delta=0.25: 1.0 -> 0.75 is not more than min_delta better; got {_decisions}"
_, (_decisions, _best, _bad) = _run_stopper({"patience": 2, "mode": "max", "min_delta": 0.25}, [0.5, 0.75, 1.0])
assert _decisions == [False, False, False] and _best == 1.0 and _bad == 0, (
    "mode='max', min_delta=0.25 on [0.5, 0.75, 1.0]: 0.75 is exactly min_delta better (a bad evaluation), 1.0 is "
    f"an improvement over 0.5; got decisions {_decisions}, best {_best}, bad_evals {_bad}"
)
_, (_decisions, _best, _) = _run_stopper(
    {"patience": 2, "mode": "max", "min_delta": 0.05}, [0.5, 0.54, 0.56, 0.57, 0.6, 0.62]
)
assert _decisions == [False, False, False, False, True, False], f"mode='max', min_delta=0.05: got {_decisions}"
assert _best == 0.62, f"mode='max', min_delta=0.05: best should be 0.62, got {_best}"

# The count resets on an improvement; stopping needs `patience` bad steps in a row.
_, (_decisions, _best, _bad) = _run_stopper({"patience": 3}, [5.0, 6.0, 7.0, 4.0, 6.0, 7.0, 8.0])
assert _decisions == [False, False, False, False, False, False, True], (
    f"patience=3 on [5.0, 6.0, 7.0, 4.0, 6.0, 7.0, 8.0]: got {_decisions}"
)
assert _best == 4.0 and _bad == 3, f"best 4.0 and 3 bad steps, got {_best}, {_bad}"

# patience=0 stops at the first non-improving value.
_, (_decisions, _, _) = _run_stopper({"patience": 0}, [2.0, 1.0, 1.5])
assert _decisions == [False, False, True], f"patience=0 should stop at the first bad value, got {_decisions}"

# NaN is never an improvement, not even first.
_nan = float("nan")
_, (_first, _best, _bad), (_decisions, _best_after, _) = _run_stopper({"patience": 2}, [_nan], [3.0, _nan, _nan])
assert _first == [False], f"a first NaN is a bad step (count 1 of patience 2), got {_first}"
assert _best is None and _bad == 1, f"a NaN never becomes the best; got {_best}, {_bad}"
assert _decisions == [False, False, True], f"NaN values count as bad steps, got {_decisions}"
assert _best_after == 3.0, f"the best value should stay 3.0 after NaN values, got {_best_after}"
_, (_decisions, _, _) = _run_stopper({"patience": 1, "mode": "max"}, [0.3, _nan])
assert _decisions == [False, True], f"mode='max': NaN is a bad step, got {_decisions}"

for _kwargs in [{"patience": 2, "mode": "minimum"}, {"patience": -1}, {"patience": 2, "min_delta": -0.1}]:
    try:
        _run_stopper(_kwargs)
    except ValueError:
        pass
    else:
        raise AssertionError(f"EarlyStopping(**{_kwargs}) should raise ValueError")

# Written by hand, not with the course package's EarlyStopping.


_es_library = (
    "mlcraft.training.callbacks.EarlyStopping.__init__",
    "mlcraft.training.callbacks.EarlyStopping.step",
    "mlcraft.training.callbacks.EarlyStopping.improved",
)
_, (_decisions, _, _) = call_without(
    _run_stopper, {"patience": 1, "mode": "max"}, [0.5, 0.7, 0.6], forbidden=_es_library
)
for _value, _want, _got in zip((0.5, 0.7, 0.6), (False, False, True), _decisions, strict=True):
    assert _got is _want, f"EarlyStopping(1, mode='max').step({_value}) should return {_want}, got {_got!r}"
### END HIDDEN TESTS
print("EarlyStopping: tests passed")


# %% [markdown] nbgrader={"grade": false, "grade_id": "wrap-up", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Wrap-up
#
# - One training step is six lines, in a fixed order: clear gradients to `None`, move the
#   batch, forward under autocast, backward through the scaler, unscale *then* clip, step and
#   update through the scaler. Log the pre-clip gradient norm.
# - Warm up linearly, decay with a cosine, and check a hand-written schedule against
#   PyTorch's schedulers.
# - Accumulating `k` micro-batches needs each loss divided by `k`; then it is exactly one
#   big-batch step.
# - Evaluate in eval mode under `inference_mode`, weight batches by their size, and give the
#   model back in the modes you found it.
# - A checkpoint holds everything a run depends on, generators included; write it atomically
#   and load it with `weights_only=True`.
# - Stop when the validation metric has not improved for `patience` evaluations.
#
# The course package collects production versions of these pieces (schedules, checkpoints,
# early stopping) in `mlcraft.training`; later modules use them.


# %% [markdown] nbgrader={"grade": false, "grade_id": "self-check", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Self-check
#
# 1. Suppose `train_step` clipped before `scaler.unscale_`, with a scale of 65536 and
#    `max_grad_norm=1`. How large would the gradient the optimizer uses be, and why can a test with a
#    disabled scaler not catch the mistake?
# 2. Why must `warmup_cosine_lr` return `min_lr` for `step >= total_steps` rather than keep
#    evaluating the cosine? What would the cosine formula give at
#    `step = 2 * total_steps - warmup_steps`? And with `warmup_steps == total_steps`, where would
#    `progress` divide by zero?
# 3. `accumulated_step` divides each micro-batch loss by `k`. If you forgot the division, would a
#    comparison of one step with SGD catch it? With Adam?
# 4. In `evaluate`, batches of 16, 16, 16 and 2 samples have mean losses 1.0, 1.0, 1.0 and 3.0. What
#    is the loss over all samples, and what does the mean of the batch means give?
# 5. Why does `evaluate` give every submodule back its own mode, instead of calling `model.train()`
#    at the end?
# 6. `save_checkpoint` writes a temporary file and then calls `os.replace`. Why must that file be in
#    the folder of `path` and not in the system's temporary folder?
# 7. The first value given to `EarlyStopping.step` is `NaN`. If it became `best`, what would happen
#    to the rest of the run?
#
# <details><summary>Answers</summary>
#
# 1. The clip sees the scaled gradients, 65536 times too large, and cuts their norm to 1; the
#    scaler's step then divides by 65536, so the optimizer gets a norm of about `1.5e-5`: almost no
#    learning. The returned norm is also 65536 times too large. With a disabled scaler the scale is
#    1, and the two orders give the same numbers.
# 2. Past the end, `progress` exceeds 1 and the cosine rises again: at
#    `step = 2 * total_steps - warmup_steps`, `progress = 2`, `cos(2π) = 1`, and the formula gives
#    `base_lr` back. With `warmup_steps == total_steps`, `total_steps - warmup_steps` is 0, but the
#    decay branch is never reached: every step below `total_steps` is warmup, every later one gets
#    `min_lr`. Only code that computes `progress` before choosing the branch divides by zero.
# 3. With SGD, yes: the step is `k` times too large. With Adam, barely: it divides the gradient by
#    the root of its squared average, so a constant factor cancels except through `eps` (and
#    weight decay, if any). A test with SGD shows the mistake plainly.
# 4. `(48 × 1.0 + 2 × 3.0) / 50 = 1.08`. The mean of the batch means is `6.0 / 4 = 1.5`: the 2 samples
#    of the last batch count as much as 16 samples each.
# 5. `model.train()` sets every submodule to train mode: a BatchNorm layer kept frozen in eval mode
#    would start updating its running statistics, and a model that came in eval mode would leave in
#    train mode.
# 6. `os.replace` is atomic only within one file system, and the temporary folder is often another
#    one (a `tmpfs`, a different disk). There the replace fails, and a copy instead would not be
#    atomic: a crash could leave half a checkpoint at `path`.
# 7. Every comparison with `NaN` is false, so no later value could be an improvement: the run would
#    stop after `patience` evaluations however well it trains. That is why `NaN` never becomes the
#    best value.
#
# </details>
