"""Different but correct: a range test by membership in ``range(2**32)`` and a CUDA seed call of its
own, a conditional expression for the dtype, log-sum-exp as ``m + log1p(sum(exp(x - m)) - 1)``
computed in float64 (an all ``-inf`` slice reaches ``log1p(-1) = -inf`` without a special case),
and a softmax that L1-normalises ``exp(x - max)`` with ``torch.nn.functional.normalize``."""

# %% grade_id=seed-all-answer
import random

import numpy as np
import torch


def seed_all(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and all GPUs) with ``seed``."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed_all: the seed must be an int, not {type(seed).__name__}")
    if seed not in range(2**32):
        raise ValueError(f"seed_all: {seed} is outside [0, 2**32 - 1]")
    torch.cuda.manual_seed_all(seed)  # a no-op without CUDA; manual_seed below covers it too
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)


# %% grade_id=choose-amp-dtype-answer
import torch


def choose_amp_dtype(device_type: str, bf16_supported: bool) -> torch.dtype:
    """The autocast dtype for ``device_type`` ("cpu", "cuda" or "mps")."""
    if device_type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"no autocast dtype for device type {device_type!r}")
    native_bf16 = device_type == "cpu" or (device_type == "cuda" and bf16_supported)
    return torch.bfloat16 if native_bf16 else torch.float16


# %% grade_id=logsumexp-answer
import torch


def logsumexp(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``log(sum(exp(x), dim))`` computed without overflow or underflow; ``dim`` is removed."""
    wide = torch.float32 if x.device.type == "mps" else torch.float64
    w = x.to(wide)
    m = torch.amax(w, dim=dim, keepdim=True)
    m = torch.where(torch.isneginf(m), torch.zeros_like(m), m)
    # The largest term is exp(0) = 1; log1p of the others is more accurate than log of the whole sum.
    rest = torch.exp(w - m).sum(dim=dim) - 1.0
    return (torch.log1p(rest) + m.squeeze(dim)).to(x.dtype)


# %% grade_id=softmax-answer
import torch
import torch.nn.functional as F  # noqa: N812


def softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``exp(x) / sum(exp(x), dim)`` computed without overflow; same shape as ``x``."""
    wide = torch.float32 if x.device.type == "mps" else torch.float64
    w = x.to(wide)
    e = torch.exp(w - torch.amax(w, dim=dim, keepdim=True))
    return F.normalize(e, p=1.0, dim=dim).to(x.dtype)
