"""Different but correct: argument checks with operator.index, a match statement, log-sum-exp
computed in float64 on the last axis after movedim with a clamped shift, and softmax with an
in-place division."""

# %% grade_id=seed-all-answer
import operator
import random

import numpy as np
import torch


def seed_all(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and all GPUs) with ``seed``."""
    if isinstance(seed, bool):
        raise TypeError(f"a bool is not a seed, got {seed!r}")
    try:
        seed = operator.index(seed)
    except TypeError:
        raise TypeError(f"expected an int seed, got {seed!r}") from None
    if not (0 <= seed < 1 << 32):
        raise ValueError(f"expected a seed in [0, 2**32 - 1], got {seed}")
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


# %% grade_id=choose-amp-dtype-answer
import torch


def choose_amp_dtype(device_type: str, bf16_supported: bool) -> torch.dtype:
    """The autocast dtype for ``device_type`` ("cpu", "cuda" or "mps")."""
    match device_type:
        case "cpu":
            return torch.bfloat16
        case "cuda" if bf16_supported:
            return torch.bfloat16
        case "cuda" | "mps":
            return torch.float16
        case _:
            raise ValueError("cannot choose an autocast dtype for " + str(device_type))


# %% grade_id=logsumexp-answer
import torch


def logsumexp(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``log(sum(exp(x), dim))`` computed without overflow or underflow; ``dim`` is removed."""
    wide = x.movedim(dim, -1).to(torch.float64) if x.device.type != "mps" else x.movedim(dim, -1).float()
    m = wide.amax(dim=-1, keepdim=True).clamp(min=torch.finfo(wide.dtype).min)
    out = torch.log(torch.sum(torch.exp(wide - m), dim=-1)) + m[..., 0]
    return out.to(x.dtype)


# %% grade_id=softmax-answer
import torch


def softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``exp(x) / sum(exp(x), dim)`` computed without overflow; same shape as ``x``."""
    shifted = x - torch.max(x, dim=dim, keepdim=True)[0]
    e = shifted.exp_()
    e /= torch.sum(e, dim=dim, keepdim=True)
    return e
