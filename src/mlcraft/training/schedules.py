"""Learning-rate schedules: linear warmup, then cosine decay or a constant rate.

Cosine decay follows SGDR (Loshchilov & Hutter, 2017, https://arxiv.org/abs/1608.03983) without
restarts; the warmup follows Goyal et al. (2017, https://arxiv.org/abs/1706.02677). Equal to
``torch.optim.lr_scheduler.SequentialLR(LinearLR, CosineAnnealingLR)`` (see the tests).
"""

from __future__ import annotations

import math
from typing import Literal

import torch

__all__ = ["build_scheduler", "lr_multiplier"]


def lr_multiplier(
    step: int,
    *,
    warmup_steps: int,
    total_steps: int,
    schedule: Literal["cosine", "constant"] = "cosine",
    min_lr_ratio: float = 0.0,
) -> float:
    """Factor applied to the peak learning rate for optimizer step ``step`` (0-based).

    - Warmup, ``step < warmup_steps``: ``(step + 1) / warmup_steps``; the first step already
      moves (a factor of 0 would waste it), and step ``warmup_steps - 1`` runs at the peak.
    - Cosine, afterwards: ``min_lr_ratio + (1 - min_lr_ratio) * (1 + cos(pi * t)) / 2`` with
      ``t = (step - warmup_steps) / (total_steps - warmup_steps)``, reaching ``min_lr_ratio`` at
      ``total_steps`` and staying there.
    - Constant, afterwards: 1.

    Raises:
        ValueError: for negative values, ``warmup_steps > total_steps`` or ``min_lr_ratio`` outside [0, 1].
    """
    if schedule not in ("cosine", "constant"):
        raise ValueError(f"unknown schedule {schedule!r}; use 'cosine' or 'constant'")
    if step < 0 or warmup_steps < 0 or total_steps < 1:
        raise ValueError(
            f"need step >= 0, warmup_steps >= 0, total_steps >= 1; got {step}, {warmup_steps}, {total_steps}"
        )
    if warmup_steps > total_steps:
        raise ValueError(f"warmup_steps ({warmup_steps}) exceeds total_steps ({total_steps})")
    if not 0.0 <= min_lr_ratio <= 1.0:
        raise ValueError(f"min_lr_ratio must be in [0, 1], got {min_lr_ratio}")
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    decay_steps = total_steps - warmup_steps
    progress = min((step - warmup_steps) / decay_steps, 1.0) if decay_steps > 0 else 1.0
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    *,
    warmup_steps: int,
    total_steps: int,
    schedule: Literal["cosine", "constant"] = "cosine",
    min_lr_ratio: float = 0.0,
) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` applying :func:`lr_multiplier`; call ``.step()`` after each optimizer step."""
    # Validate eagerly, so a bad config fails here rather than at the first step.
    lr_multiplier(0, warmup_steps=warmup_steps, total_steps=total_steps, schedule=schedule, min_lr_ratio=min_lr_ratio)

    def factor(step: int) -> float:
        return lr_multiplier(
            step, warmup_steps=warmup_steps, total_steps=total_steps, schedule=schedule, min_lr_ratio=min_lr_ratio
        )

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
