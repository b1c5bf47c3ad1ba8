"""Different but correct: model.zero_grad, get_total_norm + clip_grads_with_norm_, a schedule
written as a ramp then a cosine over the decay window, accumulation that weights each loss by its
share of the samples, inference_mode with a dict of modes restored by name and the sums stacked at
the end, and a checkpoint written to ``<path>.tmp`` and moved with Path.replace."""

# %% grade_id=train-step-answer
import torch


def train_step(model, batch, loss_fn, optimizer, scaler, *, device, amp_dtype, max_grad_norm):
    """One optimizer step with autocast, loss scaling and gradient clipping."""
    model.zero_grad(set_to_none=True)
    x, y = batch
    x = x.to(device, non_blocking=True)
    y = y.to(device, non_blocking=True)
    with torch.autocast(device.type, dtype=amp_dtype):
        logits = model(x)
        loss = loss_fn(logits, y)
    scaled = scaler.scale(loss)
    scaled.backward()
    scaler.unscale_(optimizer)
    params = [p for p in model.parameters() if p.grad is not None]
    total = torch.nn.utils.get_total_norm([p.grad for p in params])
    if max_grad_norm is not None:
        torch.nn.utils.clip_grads_with_norm_(params, max_grad_norm, total)
    scaler.step(optimizer)
    scaler.update()
    return {"loss": loss.item(), "grad_norm": total.item()}


# %% grade_id=warmup-cosine-answer
import math


def warmup_cosine_lr(step, *, base_lr, warmup_steps, total_steps, min_lr=0.0):
    """Learning rate for 0-based optimizer step ``step``: linear warmup, then cosine decay to ``min_lr``."""
    if not (0 <= warmup_steps <= total_steps and total_steps >= 1):
        raise ValueError("need 0 <= warmup_steps <= total_steps and total_steps >= 1")
    if not (base_lr > 0 and 0 <= min_lr <= base_lr):
        raise ValueError("need base_lr > 0 and 0 <= min_lr <= base_lr")
    if step < 0:
        raise ValueError("step must be >= 0")
    if step >= total_steps:
        lr = min_lr
    elif warmup_steps > 0 and step < warmup_steps:
        lr = base_lr * (step + 1) / warmup_steps
    else:
        window = total_steps - warmup_steps
        position = step - warmup_steps
        lr = min_lr + 0.5 * (base_lr - min_lr) * (1 + math.cos(position / window * math.pi))
    return float(lr)


# %% grade_id=accumulated-step-answer
def accumulated_step(model, micro_batches, loss_fn, optimizer):
    """One optimizer step over equally sized micro-batches, equal to one step on their concatenation."""
    sizes = [len(targets) for _, targets in micro_batches]
    total = sum(sizes)
    if total == 0:
        raise ValueError("micro_batches must not be empty")
    optimizer.zero_grad(set_to_none=True)
    weighted = 0.0
    for (inputs, targets), n in zip(micro_batches, sizes, strict=True):
        loss = loss_fn(model(inputs), targets)
        (loss * (n / total)).backward()
        weighted += loss.item() * n / total
    optimizer.step()
    return weighted


# %% grade_id=evaluate-answer
import torch


def evaluate(model, batches, loss_fn, device):
    """Mean loss (weighted by batch size) and accuracy of ``model`` over ``batches``."""
    modes = {name: m.training for name, m in model.named_modules()}
    model.eval()
    losses, hits, sizes = [], [], []
    try:
        with torch.inference_mode():
            for inputs, labels in batches:
                inputs, labels = inputs.to(device), labels.to(device)
                scores = model(inputs)
                losses.append(loss_fn(scores, labels).double() * labels.numel())
                hits.append((scores.argmax(dim=-1) == labels).sum())
                sizes.append(labels.numel())
    finally:
        for name, m in model.named_modules():
            m.training = modes[name]
    if not sizes:
        raise ValueError("evaluate needs at least one batch")
    n = sum(sizes)
    return {
        "loss": float(torch.stack(losses).double().sum().item() / n),
        "accuracy": float(torch.stack(hits).sum().item() / n),
    }


# %% grade_id=checkpoint-answer
import random
from pathlib import Path

import numpy as np
import torch


def _rng_states():
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    states = {
        "python": random.getstate(),
        "numpy": (kind, torch.tensor(keys.astype(np.int64)), pos, has_gauss, gauss),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def save_checkpoint(path, model, optimizer, scaler, step):
    """Atomically write model, optimizer, scaler, step and RNG states to ``path``."""
    final = Path(path)
    partial = final.with_suffix(final.suffix + ".tmp")
    try:
        torch.save(
            {
                "step": int(step),
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict(),
                "rng": _rng_states(),
            },
            partial,
        )
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(final)


def load_checkpoint(path, model, optimizer, scaler):
    """Restore model, optimizer, scaler and RNG states from ``path``; return the saved step."""
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scaler.load_state_dict(state["scaler"])
    rng = state["rng"]
    random.setstate(rng["python"])
    kind, keys, pos, has_gauss, gauss = rng["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    return int(state["step"])


# %% grade_id=early-stopping-answer
import math


class EarlyStopping:
    """Stop when a validation metric has not improved by more than ``min_delta`` for ``patience`` steps."""

    def __init__(self, patience, mode="min", min_delta=0.0):
        if mode == "min":
            self._better = lambda new, best: new < best - min_delta
        elif mode == "max":
            self._better = lambda new, best: new > best + min_delta
        else:
            raise ValueError(f"unknown mode {mode!r}")
        if patience < 0:
            raise ValueError("patience must not be negative")
        if min_delta < 0:
            raise ValueError("min_delta must not be negative")
        self.patience = patience
        self.best = None
        self.bad_evals = 0

    def step(self, value):
        """Record ``value``; return True when training should stop."""
        if not math.isnan(value) and (self.best is None or self._better(value, self.best)):
            self.best = value
            self.bad_evals = 0
            return False
        self.bad_evals += 1
        return self.bad_evals >= self.patience
