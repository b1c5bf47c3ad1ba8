"""Trainer callbacks: the seam for experiment trackers, and early stopping.

A tracker (MLflow in 07_mlops, or anything else) subclasses :class:`Callback` and receives
the config at the start, metrics after each logged step and each evaluation, and the end of
the run. The trainer never imports a tracker itself.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from mlcraft.training.trainer import Trainer

__all__ = ["Callback", "EarlyStopping", "HistoryCallback"]


class Callback:
    """Override the hooks you need; every hook is called on rank 0 only."""

    def on_fit_start(self, trainer: Trainer) -> None:
        """Before the first step (after a resume, if any)."""

    def on_step_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        """After every ``log_every``-th optimizer step: loss, lr, grad_norm, step, epoch."""

    def on_eval_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        """After each evaluation, with the validation metrics."""

    def on_fit_end(self, trainer: Trainer) -> None:
        """After the last step, whether the run finished, stopped early or hit max_steps."""


class HistoryCallback(Callback):
    """Keeps every logged metric dict in memory (handy in notebooks for plotting)."""

    def __init__(self) -> None:
        self.steps: list[dict[str, float]] = []
        self.evals: list[dict[str, float]] = []

    def on_step_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        self.steps.append(dict(metrics))

    def on_eval_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        self.evals.append(dict(metrics))


class EarlyStopping:
    """Stop when the monitored metric has not improved for ``patience`` evaluations.

    ``min_delta`` is the smallest change that counts as an improvement. A NaN metric never
    improves. State is a plain dict so it can be checkpointed.
    """

    def __init__(self, patience: int, mode: Literal["min", "max"] = "min", min_delta: float = 0.0) -> None:
        if patience < 1:
            raise ValueError(f"patience must be >= 1, got {patience}")
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if min_delta < 0:
            raise ValueError(f"min_delta must be >= 0, got {min_delta}")
        self.patience, self.mode, self.min_delta = patience, mode, min_delta
        self.best: float | None = None
        self.bad_evals = 0

    def improved(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def step(self, value: float) -> bool:
        """Record one evaluation; returns True when training should stop."""
        if self.improved(value):
            self.best, self.bad_evals = value, 0
        else:
            self.bad_evals += 1
        return self.bad_evals >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "bad_evals": self.bad_evals}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.bad_evals = state["best"], int(state["bad_evals"])
