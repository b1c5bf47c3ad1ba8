"""Wrong: forgets the length check: mismatched lengths raise IndexError from boolean indexing (not ValueError), or pass silently through zip."""
# fails: test-roc-auc

# %% grade_id=roc-auc-answer
import numpy as np
from scipy.stats import rankdata


def roc_auc(y_true, scores) -> float:
    y = np.asarray(y_true) == 1
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("one class only")
    r = rankdata(np.asarray(scores))
    return float((r[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
