"""Returns NaN for a single class instead of raising ValueError."""

# fails: test-roc-auc
# %% grade_id=roc-auc-answer
import numpy as np
from scipy.stats import rankdata


def roc_auc(y_true, scores):
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    if len(y) != len(s):
        raise ValueError("lengths differ")
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    ranks = rankdata(s)
    with np.errstate(invalid="ignore", divide="ignore"):
        return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
