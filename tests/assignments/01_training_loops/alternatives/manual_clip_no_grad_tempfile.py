"""Different but correct: gradients cleared by hand, the norm and the clipping computed by hand,
a cos² form of the schedule, gradients divided after accumulation instead of the losses before,
torch.no_grad with per-batch .item() and a pre-order restore of the modes, a checkpoint written
through tempfile.NamedTemporaryFile with NumPy's dict-style state as lists, and early stopping
with a sign trick."""

# %% grade_id=train-step-answer
import math

import torch


def train_step(model, batch, loss_fn, optimizer, scaler, *, device, amp_dtype, max_grad_norm):
    """One optimizer step with autocast, loss scaling and gradient clipping."""
    optimizer.zero_grad()  # set_to_none=True is the default
    for p in model.parameters():
        p.grad = None
    inputs, targets = (t.to(device=device, non_blocking=True) for t in batch)
    with torch.autocast(device_type=device.type, dtype=amp_dtype, enabled=True):
        outputs = model(inputs)
        loss = loss_fn(outputs, targets)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads])).item()
    if max_grad_norm is not None and math.isfinite(norm) and norm > max_grad_norm:
        coef = max_grad_norm / (norm + 1e-6)
        for g in grads:
            g.mul_(coef)
    scaler.step(optimizer)
    scaler.update()
    return {"loss": float(loss.detach()), "grad_norm": float(norm)}


# %% grade_id=warmup-cosine-answer
import math


def warmup_cosine_lr(step, *, base_lr, warmup_steps, total_steps, min_lr=0.0):
    """Learning rate for 0-based optimizer step ``step``: linear warmup, then cosine decay to ``min_lr``."""
    checks = {
        "step must be >= 0": step < 0,
        "warmup_steps must be >= 0": warmup_steps < 0,
        "total_steps must be >= 1": total_steps < 1,
        "warmup_steps must be <= total_steps": warmup_steps > total_steps,
        "base_lr must be > 0": base_lr <= 0,
        "min_lr must be in [0, base_lr]": min_lr < 0 or min_lr > base_lr,
    }
    problems = [message for message, bad in checks.items() if bad]
    if problems:
        raise ValueError("; ".join(problems))
    if step < warmup_steps:
        return (step + 1) / warmup_steps * base_lr
    decay_steps = total_steps - warmup_steps
    t = min(step - warmup_steps, decay_steps)
    # 0.5 * (1 + cos(x)) == cos(x / 2) ** 2
    if t == decay_steps:
        return float(min_lr)
    return min_lr + (base_lr - min_lr) * math.cos(math.pi * t / decay_steps / 2) ** 2


# %% grade_id=accumulated-step-answer
def accumulated_step(model, micro_batches, loss_fn, optimizer):
    """One optimizer step over equally sized micro-batches, equal to one step on their concatenation."""
    micro_batches = list(micro_batches)
    if not micro_batches:
        raise ValueError("need at least one micro-batch")
    model.zero_grad(set_to_none=True)
    losses = []
    for x, y in micro_batches:
        loss = loss_fn(model(x), y)
        loss.backward()
        losses.append(loss.detach())
    for p in model.parameters():
        if p.grad is not None:
            p.grad /= len(micro_batches)
    optimizer.step()
    return sum(loss.item() for loss in losses) / len(losses)


# %% grade_id=evaluate-answer
import torch


def evaluate(model, batches, loss_fn, device):
    """Mean loss (weighted by batch size) and accuracy of ``model`` over ``batches``."""
    saved = [(m, m.training) for m in model.modules()]  # pre-order: parents before children
    model.train(False)
    total_loss, total_correct, total = 0.0, 0, 0
    try:
        with torch.no_grad():
            for x, y in batches:
                x, y = x.to(device), y.to(device)
                out = model(x)
                total_loss += loss_fn(out, y).item() * len(y)
                total_correct += int((out.argmax(1) == y).sum())
                total += len(y)
    finally:
        for m, mode in saved:
            m.train(mode)
    if not total:
        raise ValueError("no batches to evaluate")
    return {"loss": total_loss / total, "accuracy": total_correct / total}


# %% grade_id=checkpoint-answer
import os
import random
import tempfile
from pathlib import Path

import numpy as np
import torch


def save_checkpoint(path, model, optimizer, scaler, step):
    """Atomically write model, optimizer, scaler, step and RNG states to ``path``."""
    np_state = np.random.get_state(legacy=False)
    rng = {
        "random": random.getstate(),
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": np_state["state"]["key"].tolist(),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch_cpu": torch.random.get_rng_state(),
    }
    if torch.cuda.is_available():
        rng["torch_cuda"] = [torch.cuda.get_rng_state(i) for i in range(torch.cuda.device_count())]
    payload = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "step": step,
        "rng": rng,
    }
    folder = os.path.dirname(os.path.abspath(path))
    with tempfile.NamedTemporaryFile(dir=folder, prefix=".ckpt-", suffix=".partial", delete=False) as f:
        tmp_name = f.name
        try:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        except BaseException:
            f.close()
            os.unlink(tmp_name)
            raise
    os.replace(tmp_name, path)


def load_checkpoint(path, model, optimizer, scaler):
    """Restore model, optimizer, scaler and RNG states from ``path``; return the saved step."""
    ckpt = torch.load(Path(path), map_location="cpu", weights_only=True)
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scaler.load_state_dict(ckpt["scaler"])
    rng = ckpt["rng"]
    random.setstate(rng["random"])
    n = rng["numpy"]
    np.random.set_state(
        {
            "bit_generator": n["bit_generator"],
            "state": {"key": np.asarray(n["key"], dtype=np.uint32), "pos": n["pos"]},
            "has_gauss": n["has_gauss"],
            "gauss": n["gauss"],
        }
    )
    torch.random.set_rng_state(rng["torch_cpu"])
    for i, state in enumerate(rng.get("torch_cuda", [])):
        if i < torch.cuda.device_count():
            torch.cuda.set_rng_state(state, i)
    return int(ckpt["step"])


# %% grade_id=early-stopping-answer
class EarlyStopping:
    """Stop when a validation metric has not improved by more than ``min_delta`` for ``patience`` steps."""

    def __init__(self, patience, mode="min", min_delta=0.0):
        signs = {"min": 1.0, "max": -1.0}
        if mode not in signs or patience < 0 or min_delta < 0:
            raise ValueError(f"invalid EarlyStopping(patience={patience}, mode={mode!r}, min_delta={min_delta})")
        self._sign = signs[mode]
        self.patience, self.mode, self.min_delta = patience, mode, min_delta
        self.best, self.bad_evals = None, 0

    def step(self, value):
        """Record ``value``; return True when training should stop."""
        value = float(value)
        if value == value and (self.best is None or self._sign * (self.best - value) > self.min_delta):
            self.best, self.bad_evals = value, 0
            return False
        self.bad_evals += 1
        return self.bad_evals >= self.patience
