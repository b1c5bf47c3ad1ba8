"""No own argument check: relies on NumPy to reject bad seeds, so Python's random is already re-seeded when it does."""

# fails: test-seed-all
# %% grade_id=seed-all-answer
import random

import numpy as np
import torch


def seed_all(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and all GPUs) with ``seed``."""
    random.seed(seed)
    np.random.seed(seed)  # raises TypeError / ValueError for bad seeds
    torch.manual_seed(seed)
