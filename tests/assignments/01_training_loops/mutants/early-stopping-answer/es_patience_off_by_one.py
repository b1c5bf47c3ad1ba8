"""Stops only when the count of bad steps exceeds patience: one evaluation too late."""

# fails: test-early-stopping
# %% grade_id=early-stopping-answer
import math


class EarlyStopping:
    """Stop when a validation metric has not improved by more than ``min_delta`` for ``patience`` steps."""

    def __init__(self, patience, mode="min", min_delta=0.0):
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if patience < 0:
            raise ValueError(f"patience must be >= 0, got {patience}")
        if min_delta < 0:
            raise ValueError(f"min_delta must be >= 0, got {min_delta}")
        self.patience = patience
        self.mode = mode
        self.min_delta = min_delta
        self.best = None
        self.bad_evals = 0

    def step(self, value):
        """Record ``value``; return True when training should stop."""
        value = float(value)
        if math.isnan(value):
            improved = False
        elif self.best is None:
            improved = True
        elif self.mode == "min":
            improved = value < self.best - self.min_delta
        else:
            improved = value > self.best + self.min_delta
        if improved:
            self.best = value
            self.bad_evals = 0
            return False
        self.bad_evals += 1
        return self.bad_evals > self.patience
