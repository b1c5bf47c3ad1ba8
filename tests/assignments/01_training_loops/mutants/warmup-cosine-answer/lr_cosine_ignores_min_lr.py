"""Decays the cosine to 0 whatever min_lr is (and only jumps to min_lr after the end)."""

# fails: test-warmup-cosine
# %% grade_id=warmup-cosine-answer
import math


def warmup_cosine_lr(step, *, base_lr, warmup_steps, total_steps, min_lr=0.0):
    """Learning rate for 0-based optimizer step ``step``: linear warmup, then cosine decay to ``min_lr``.

    Raises:
        ValueError: for a negative step or warmup, ``total_steps < 1``, ``warmup_steps > total_steps``,
            ``base_lr <= 0``, or ``min_lr`` outside ``[0, base_lr]``.
    """
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if warmup_steps < 0 or total_steps < 1 or warmup_steps > total_steps:
        raise ValueError(
            f"need 0 <= warmup_steps <= total_steps and total_steps >= 1, got {warmup_steps}, {total_steps}"
        )
    if base_lr <= 0 or not 0 <= min_lr <= base_lr:
        raise ValueError(f"need base_lr > 0 and 0 <= min_lr <= base_lr, got base_lr={base_lr}, min_lr={min_lr}")
    if step >= total_steps:
        return float(min_lr)
    if step < warmup_steps:
        return float(base_lr * (step + 1) / warmup_steps)
    progress = (step - warmup_steps) / (total_steps - warmup_steps)
    return float(base_lr * 0.5 * (1.0 + math.cos(math.pi * progress)))
