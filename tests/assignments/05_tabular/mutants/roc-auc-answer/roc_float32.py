"""Wrong: casts scores to float32 "to save memory", merging distinct float64 (or large int) scores into ties."""
# fails: test-roc-auc

# %% grade_id=roc-auc-answer
import numpy as np
from scipy.stats import rankdata


def roc_auc(y_true, scores) -> float:
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(scores, dtype=np.float32)
    if len(y) != len(s):
        raise ValueError("length mismatch")
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("one class only")
    r = rankdata(s)
    return float((r[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
