"""Different but correct, written from the statements alone: the norm always measured by
clip_grad_norm_ (with an infinite limit when max_grad_norm is None), the cosine written as
1 - sin², accumulation over a tuple with losses summed as Python floats, torch.no_grad with
Python-int counts and the modes restored per module from a list of (module, mode) pairs, a
checkpoint written through tempfile.mkstemp + os.fdopen with NumPy's tuple state as an int64
tensor, and early stopping that picks its comparison from the operator module."""

# %% grade_id=train-step-answer
import math

import torch


def train_step(model, batch, loss_fn, optimizer, scaler, *, device, amp_dtype, max_grad_norm):
    """One optimizer step with autocast, loss scaling and gradient clipping."""
    optimizer.zero_grad(set_to_none=True)
    inputs = batch[0].to(device=device, non_blocking=True)
    targets = batch[1].to(device=device, non_blocking=True)
    with torch.autocast(device_type=device.type, dtype=amp_dtype):
        loss = loss_fn(model(inputs), targets)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    limit = math.inf if max_grad_norm is None else float(max_grad_norm)
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), limit)
    scaler.step(optimizer)
    scaler.update()
    return {"loss": loss.detach().float().item(), "grad_norm": float(norm.item())}


# %% grade_id=warmup-cosine-answer
import math


def warmup_cosine_lr(step, *, base_lr, warmup_steps, total_steps, min_lr=0.0):
    """Learning rate for 0-based optimizer step ``step``: linear warmup, then cosine decay to ``min_lr``."""
    if total_steps < 1:
        raise ValueError(f"total_steps must be at least 1, got {total_steps}")
    if warmup_steps < 0 or warmup_steps > total_steps:
        raise ValueError(f"warmup_steps must be in [0, total_steps], got {warmup_steps}")
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if not base_lr > 0:
        raise ValueError(f"base_lr must be positive, got {base_lr}")
    if min_lr < 0 or min_lr > base_lr:
        raise ValueError(f"min_lr must be in [0, base_lr], got {min_lr}")
    if step >= total_steps:
        return float(min_lr)
    if step < warmup_steps:
        return float(base_lr * (step + 1) / warmup_steps)
    progress = (step - warmup_steps) / (total_steps - warmup_steps)
    # 0.5 * (1 + cos(pi * p)) == 1 - sin(pi * p / 2) ** 2
    return float(min_lr + (base_lr - min_lr) * (1.0 - math.sin(math.pi * progress / 2) ** 2))


# %% grade_id=accumulated-step-answer
def accumulated_step(model, micro_batches, loss_fn, optimizer):
    """One optimizer step over equally sized micro-batches, equal to one step on their concatenation."""
    micro_batches = tuple(micro_batches)
    k = len(micro_batches)
    if k == 0:
        raise ValueError("micro_batches is empty")
    optimizer.zero_grad(set_to_none=True)
    total = 0.0
    for index in range(k):
        inputs, targets = micro_batches[index]
        loss = loss_fn(model(inputs), targets)
        total += loss.item()
        (loss / k).backward()
    optimizer.step()
    return total / k


# %% grade_id=evaluate-answer
import torch


def evaluate(model, batches, loss_fn, device):
    """Mean loss (weighted by batch size) and accuracy of ``model`` over ``batches``."""
    saved = [(module, module.training) for module in model.modules()]
    loss_sum = 0.0
    correct = 0
    count = 0
    try:
        model.eval()
        with torch.no_grad():
            for inputs, targets in batches:
                inputs = inputs.to(device)
                targets = targets.to(device)
                logits = model(inputs)
                size = len(targets)
                loss_sum += loss_fn(logits, targets).item() * size
                correct += int((logits.argmax(dim=1) == targets).sum().item())
                count += size
    finally:
        for module, mode in saved:
            module.train(mode)
            # train() recurses into children; the loop visits parents first, so each child
            # is set again to its own saved mode afterwards.
    if count == 0:
        raise ValueError("evaluate needs at least one batch")
    return {"loss": loss_sum / count, "accuracy": correct / count}


# %% grade_id=checkpoint-answer
import os
import random
import tempfile
from pathlib import Path

import numpy as np
import torch


def save_checkpoint(path, model, optimizer, scaler, step):
    """Atomically write model, optimizer, scaler, step and RNG states to ``path`` (a weights_only-safe file)."""
    path = Path(path)
    name, keys, pos, has_gauss, cached = np.random.get_state()
    rng = {
        "python": random.getstate(),
        "numpy": (str(name), torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    payload = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "step": int(step),
        "rng": rng,
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load_checkpoint(path, model, optimizer, scaler):
    """Restore model, optimizer, scaler and RNG states from ``path``; return the saved step."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scaler.load_state_dict(ckpt["scaler"])
    rng = ckpt["rng"]
    version, internal, gauss = rng["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = rng["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    return int(ckpt["step"])


# %% grade_id=early-stopping-answer
import math
import operator


class EarlyStopping:
    """Stop when a validation metric has not improved by more than ``min_delta`` for ``patience`` steps."""

    def __init__(self, patience, mode="min", min_delta=0.0):
        comparisons = {"min": (operator.lt, operator.sub), "max": (operator.gt, operator.add)}
        if mode not in comparisons:
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if patience < 0:
            raise ValueError(f"patience must be >= 0, got {patience}")
        if min_delta < 0:
            raise ValueError(f"min_delta must be >= 0, got {min_delta}")
        self._better, self._shift = comparisons[mode]
        self.patience = patience
        self.min_delta = min_delta
        self.best = None
        self.bad_evals = 0

    def step(self, value):
        """Record ``value``; return True when training should stop."""
        if math.isnan(value):
            improved = False
        elif self.best is None:
            improved = True
        else:
            improved = self._better(value, self._shift(self.best, self.min_delta))
        if improved:
            self.best = value
            self.bad_evals = 0
            return False
        self.bad_evals += 1
        return self.bad_evals >= self.patience
