"""Different but correct: state copying for the generators, a lookup table, masked_fill and
in-place ops on intermediates for log-sum-exp, and a softmax built on the learner's own logsumexp."""

# %% grade_id=seed-all-answer
import operator
import random

import numpy as np
import torch


def seed_all(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and all GPUs) with ``seed``."""
    if type(seed) is not int:
        raise TypeError("seed must be an int")
    seed = operator.index(seed)
    if seed < 0 or seed >= 2**32:
        raise ValueError(f"seed {seed} is out of range")
    random.setstate(random.Random(seed).getstate())
    np.random.set_state(np.random.RandomState(seed).get_state())
    torch.random.default_generator.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        torch.mps.manual_seed(seed)


# %% grade_id=choose-amp-dtype-answer
import torch

_AMP_TABLE = {
    ("cpu", True): torch.bfloat16,
    ("cpu", False): torch.bfloat16,
    ("cuda", True): torch.bfloat16,
    ("cuda", False): torch.float16,
    ("mps", True): torch.float16,
    ("mps", False): torch.float16,
}


def choose_amp_dtype(device_type: str, bf16_supported: bool) -> torch.dtype:
    """The autocast dtype for ``device_type`` ("cpu", "cuda" or "mps")."""
    try:
        return _AMP_TABLE[(device_type, bool(bf16_supported))]
    except KeyError:
        raise ValueError(f"unsupported device type: {device_type}") from None


# %% grade_id=logsumexp-answer
import torch


def logsumexp(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``log(sum(exp(x), dim))`` computed without overflow or underflow; ``dim`` is removed."""
    m = x.max(dim=dim, keepdim=True).values
    m = m.masked_fill(m == float("-inf"), 0.0)
    s = (x - m).exp_().sum(dim=dim)
    return s.log_().add_(m.squeeze(dim))


# %% grade_id=softmax-answer
import torch


def softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``exp(x) / sum(exp(x), dim)`` computed without overflow; same shape as ``x``."""
    return torch.exp(x - logsumexp(x, dim).unsqueeze(dim))
