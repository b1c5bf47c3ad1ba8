"""Different but correct: the argument checked with comparisons against ``0xFFFFFFFF`` and the
generators seeded in reverse order, a dict of device rules, log-sum-exp folded one slice at a time
with ``torch.logaddexp`` (no explicit maximum at all), and a softmax computed row by row in a Python
loop over the slices along ``dim``."""

# %% grade_id=seed-all-answer
import random

import numpy as np
import torch


def seed_all(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and all GPUs) with ``seed``."""
    if not isinstance(seed, int) or type(seed) is bool:
        raise TypeError("seed must be an int")
    if seed < 0 or seed > 0xFFFFFFFF:
        raise ValueError("seed must be in [0, 2**32 - 1]")
    np.random.seed(seed)
    random.seed(seed)
    torch.random.manual_seed(seed)


# %% grade_id=choose-amp-dtype-answer
import torch


def choose_amp_dtype(device_type: str, bf16_supported: bool) -> torch.dtype:
    """The autocast dtype for ``device_type`` ("cpu", "cuda" or "mps")."""
    rules = {
        "cpu": lambda: torch.bfloat16,
        "cuda": lambda: torch.bfloat16 if bf16_supported else torch.float16,
        "mps": lambda: torch.float16,
    }
    if device_type not in rules:
        raise ValueError(f"device type {device_type} has no autocast dtype in this course")
    return rules[device_type]()


# %% grade_id=logsumexp-answer
import torch


def logsumexp(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``log(sum(exp(x), dim))`` computed without overflow or underflow; ``dim`` is removed."""
    wide = torch.float32 if x.device.type == "mps" else torch.float64
    slices = x.to(wide).unbind(dim)
    shape = list(x.shape)
    del shape[dim]
    acc = torch.full(shape, float("-inf"), dtype=wide, device=x.device)  # log(0): the empty sum
    for s in slices:
        acc = torch.logaddexp(acc, s)  # log(e^acc + e^s), stable for any finite or -inf pair
    return acc.to(x.dtype)


# %% grade_id=softmax-answer
import torch


def softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``exp(x) / sum(exp(x), dim)`` computed without overflow; same shape as ``x``."""
    wide = torch.float32 if x.device.type == "mps" else torch.float64
    moved = x.to(wide).movedim(dim, -1)
    rows = moved.reshape(-1, moved.shape[-1]) if moved.numel() else moved.reshape(0, moved.shape[-1])
    out = []
    for row in rows:
        e = torch.exp(row - row.max())
        out.append(e / e.sum())
    probs = torch.stack(out) if out else rows.clone()
    return probs.reshape(moved.shape).movedim(-1, dim).to(x.dtype)
