"""Configuration of a training run (used by :class:`mlcraft.training.Trainer`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from mlcraft.config.base import FrozenConfig

__all__ = ["TrainingConfig"]


class TrainingConfig(FrozenConfig):
    """Everything that decides what a training run computes. Logged and checkpointed with the run."""

    lr: float = Field(default=1e-3, gt=0, le=10)  # peak learning rate, reached after warmup
    weight_decay: float = Field(default=0.0, ge=0, le=1)  # AdamW decoupled weight decay
    batch_size: int = Field(default=32, ge=1, le=1 << 20)  # samples per micro-batch, per process
    epochs: int = Field(default=1, ge=1, le=100_000)  # passes over the training set
    max_steps: int | None = Field(default=None, ge=1)  # stop after this many optimizer steps (overrides epochs)
    accumulation_steps: int = Field(default=1, ge=1, le=4096)  # micro-batches per optimizer step
    grad_clip_norm: float | None = Field(default=1.0, gt=0)  # max global L2 norm of gradients; None: no clipping
    warmup_steps: int = Field(default=0, ge=0)  # linear warmup, in optimizer steps
    schedule: Literal["cosine", "constant"] = "cosine"  # after warmup: cosine decay to min_lr_ratio * lr, or flat
    min_lr_ratio: float = Field(default=0.0, ge=0, le=1)  # final lr of the cosine schedule, as a fraction of lr
    amp: bool = True  # autocast: bf16 on CPU and bf16-capable GPUs, fp16 + GradScaler otherwise
    seed: int = Field(default=0, ge=0, le=2**32 - 1)  # seeds python, numpy, torch and the data order
    deterministic: bool = False  # deterministic kernels (slower on GPU; bitwise-reproducible resume on CPU)
    drop_last: bool = False  # drop the last incomplete batch of each epoch
    num_workers: int = Field(default=0, ge=0, le=64)  # DataLoader worker processes
    eval_every: int | None = Field(default=None, ge=1)  # evaluate every N optimizer steps; None: each epoch end
    monitor: str = "val_loss"  # metric for early stopping and the best checkpoint
    monitor_mode: Literal["min", "max"] = "min"  # whether a lower or a higher monitored value is better
    early_stopping_patience: int | None = Field(default=None, ge=1)  # evaluations without improvement before stopping
    checkpoint_dir: Path | None = None  # where last.pt / best.pt go; None: no checkpoints
    checkpoint_every: int | None = Field(default=None, ge=1)  # save last.pt every N optimizer steps (and at the end)
    log_every: int = Field(default=50, ge=1)  # structured log line every N optimizer steps
    progress: bool = True  # tqdm progress bar (rank 0 only)
    compile: bool = False  # torch.compile the model; falls back to eager where unavailable

    @model_validator(mode="after")
    def _check_schedule(self) -> TrainingConfig:
        if self.max_steps is not None and self.warmup_steps > self.max_steps:
            raise ValueError(f"warmup_steps ({self.warmup_steps}) exceeds max_steps ({self.max_steps})")
        return self
