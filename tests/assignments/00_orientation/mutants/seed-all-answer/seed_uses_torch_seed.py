"""Calls ``torch.seed()``, which seeds torch from a non-deterministic source, instead of ``torch.manual_seed(seed)``."""

# fails: test-seed-all
# %% grade_id=seed-all-answer
import random

import numpy as np
import torch


def seed_all(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and all GPUs) with ``seed``."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if not 0 <= seed <= 2**32 - 1:
        raise ValueError(f"seed must be in [0, 2**32 - 1], got {seed}")
    random.seed(seed)
    np.random.seed(seed)
    torch.seed()
