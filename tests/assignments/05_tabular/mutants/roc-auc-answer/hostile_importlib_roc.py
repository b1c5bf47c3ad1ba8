"""Hostile: calls the forbidden sklearn.metrics.roc_auc_score through importlib + getattr on a string built at run time (no import statement naming it)."""
# fails: test-roc-auc

# %% grade_id=roc-auc-answer
import importlib

import numpy as np


def roc_auc(y_true, scores) -> float:
    y = np.asarray(y_true)
    s = np.asarray(scores)
    if len(y) != len(s):
        raise ValueError("length mismatch")
    if len(np.unique(y)) < 2:
        raise ValueError("one class only")
    fn = getattr(importlib.import_module("sklearn." + "metrics"), "_".join(["roc", "auc", "score"]))
    return float(fn(y, s))
