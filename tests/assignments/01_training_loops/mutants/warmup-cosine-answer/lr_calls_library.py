"""Hands the schedule to the course package's ``lr_multiplier``: right values, but not written by hand."""

# fails: test-warmup-cosine
# %% grade_id=warmup-cosine-answer
from mlcraft.training.schedules import lr_multiplier


def warmup_cosine_lr(step, *, base_lr, warmup_steps, total_steps, min_lr=0.0):
    """Learning rate for 0-based optimizer step ``step``: linear warmup, then cosine decay to ``min_lr``."""
    if base_lr <= 0 or not 0 <= min_lr <= base_lr:
        raise ValueError(f"need base_lr > 0 and 0 <= min_lr <= base_lr, got base_lr={base_lr}, min_lr={min_lr}")
    factor = lr_multiplier(step, warmup_steps=warmup_steps, total_steps=total_steps, min_lr_ratio=min_lr / base_lr)
    return float(base_lr * factor)
