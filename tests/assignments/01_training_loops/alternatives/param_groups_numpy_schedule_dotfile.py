"""Different but correct, written from the statements alone: gradients cleared by walking the
optimizer's param_groups, the norm measured by hand and clip_grad_norm_ called only when there
is a limit, the schedule computed with NumPy (np.interp for the warmup), accumulation that
multiplies each loss by 1/k and keeps the total as a tensor, inference_mode with sums kept on
the device in float64 and the modes restored by setting ``training`` on each module, a checkpoint
written to a hidden ``.<name>.<pid>.tmp`` file with NumPy's state as plain lists, and early
stopping written as ``sign * (best - value) > min_delta``."""

# %% grade_id=train-step-answer
import torch


def train_step(model, batch, loss_fn, optimizer, scaler, *, device, amp_dtype, max_grad_norm):
    """One optimizer step with autocast, loss scaling and gradient clipping."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            p.grad = None
    inputs, targets = [t.to(device, non_blocking=True) for t in batch]
    with torch.autocast(device.type, dtype=amp_dtype):
        outputs = model(inputs)
        loss = loss_fn(outputs, targets)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    if max_grad_norm is None:
        grads = [p.grad.detach() for p in model.parameters() if p.grad is not None]
        norm = torch.stack([g.double().pow(2).sum() for g in grads]).sum().sqrt()
    else:
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=max_grad_norm)
    scaler.step(optimizer)
    scaler.update()
    return {"loss": float(loss.item()), "grad_norm": float(norm)}


# %% grade_id=warmup-cosine-answer
import numpy as np


def warmup_cosine_lr(step, *, base_lr, warmup_steps, total_steps, min_lr=0.0):
    """Learning rate for 0-based optimizer step ``step``: linear warmup, then cosine decay to ``min_lr``."""
    invalid = [
        step < 0,
        warmup_steps < 0,
        total_steps < 1,
        warmup_steps > total_steps,
        base_lr <= 0,
        min_lr < 0,
        min_lr > base_lr,
    ]
    if any(invalid):
        raise ValueError(
            f"invalid schedule: step={step}, base_lr={base_lr}, warmup_steps={warmup_steps}, "
            f"total_steps={total_steps}, min_lr={min_lr}"
        )
    if step < warmup_steps:
        # the warmup line through (step 0, base_lr / warmup_steps) and (warmup_steps - 1, base_lr)
        return float(base_lr * np.interp(step + 1, [0, warmup_steps], [0.0, 1.0]))
    if step >= total_steps:
        return float(min_lr)
    progress = np.float64(step - warmup_steps) / np.float64(total_steps - warmup_steps)
    return float(min_lr + (base_lr - min_lr) * 0.5 * (1.0 + np.cos(np.pi * progress)))


# %% grade_id=accumulated-step-answer
import torch


def accumulated_step(model, micro_batches, loss_fn, optimizer):
    """One optimizer step over equally sized micro-batches, equal to one step on their concatenation."""
    if len(micro_batches) == 0:
        raise ValueError("accumulated_step needs at least one micro-batch")
    share = 1.0 / len(micro_batches)
    optimizer.zero_grad(set_to_none=True)
    total = None
    for inputs, targets in micro_batches:
        loss = loss_fn(model(inputs), targets)
        (loss * share).backward()
        total = loss.detach() if total is None else total + loss.detach()
    optimizer.step()
    return (total / len(micro_batches)).item()


# %% grade_id=evaluate-answer
import torch


def evaluate(model, batches, loss_fn, device):
    """Mean loss (weighted by batch size) and accuracy of ``model`` over ``batches``."""
    modules = list(model.modules())
    modes = [m.training for m in modules]
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    hits = torch.zeros((), dtype=torch.int64, device=device)
    seen = 0
    model.eval()
    try:
        with torch.inference_mode():
            for x, y in batches:
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                logits = model(x)
                loss_sum += loss_fn(logits, y).to(torch.float64) * y.numel()
                hits += logits.argmax(-1).eq(y).sum()
                seen += y.numel()
    finally:
        for m, mode in zip(modules, modes, strict=True):
            m.training = mode
    if seen == 0:
        raise ValueError("no batches to evaluate")
    return {"loss": (loss_sum / seen).item(), "accuracy": (hits.to(torch.float64) / seen).item()}


# %% grade_id=checkpoint-answer
import os
import random
from pathlib import Path

import numpy as np
import torch


def save_checkpoint(path, model, optimizer, scaler, step):
    """Atomically write model, optimizer, scaler, step and RNG states to ``path`` (a weights_only-safe file)."""
    target = Path(path)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    np_name, np_keys, np_pos, np_has_gauss, np_cached = np.random.get_state()
    checkpoint = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "step": int(step),
        "rng": {
            "random": random.getstate(),
            "numpy": [np_name, np_keys.tolist(), int(np_pos), int(np_has_gauss), float(np_cached)],
            "torch": torch.random.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        },
    }
    try:
        torch.save(checkpoint, temporary)
        os.replace(temporary, target)
    finally:
        if temporary.exists():
            temporary.unlink()


def load_checkpoint(path, model, optimizer, scaler):
    """Restore model, optimizer, scaler and RNG states from ``path``; return the saved step."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    scaler.load_state_dict(checkpoint["scaler"])
    rng = checkpoint["rng"]
    random.setstate(rng["random"])
    np_name, np_keys, np_pos, np_has_gauss, np_cached = rng["numpy"]
    np.random.set_state((np_name, np.asarray(np_keys, dtype=np.uint32), np_pos, np_has_gauss, np_cached))
    torch.random.set_rng_state(rng["torch"])
    if rng["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    return int(checkpoint["step"])


# %% grade_id=early-stopping-answer
class EarlyStopping:
    """Stop when a validation metric has not improved by more than ``min_delta`` for ``patience`` steps."""

    def __init__(self, patience, mode="min", min_delta=0.0):
        if mode == "min":
            self._sign = 1.0
        elif mode == "max":
            self._sign = -1.0
        else:
            raise ValueError(f"unknown mode {mode!r}")
        if patience < 0 or min_delta < 0:
            raise ValueError("patience and min_delta must be >= 0")
        self.patience = patience
        self.min_delta = min_delta
        self.best = None
        self.bad_evals = 0

    def step(self, value):
        """Record ``value``; return True when training should stop."""
        if value != value:  # NaN
            better = False
        elif self.best is None:
            better = True
        else:
            better = self._sign * (self.best - value) > self.min_delta
        if better:
            self.best, self.bad_evals = value, 0
            return False
        self.bad_evals += 1
        return self.bad_evals >= self.patience
