"""Delegates to the course package's ``seed_everything`` instead of seeding the generators itself."""

# fails: test-seed-all
# %% grade_id=seed-all-answer
from mlcraft.utils import seed_everything


def seed_all(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and all GPUs) with ``seed``."""
    seed_everything(seed)
