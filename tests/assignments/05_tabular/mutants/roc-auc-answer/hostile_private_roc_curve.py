"""Hostile: avoids the three named functions but lets scikit-learn do the work via the private sklearn.metrics._ranking._binary_clf_curve (the core of roc_curve) plus np.trapezoid, and RocCurveDisplay as a fallback."""
# fails: test-roc-auc

# %% grade_id=roc-auc-answer
import numpy as np


def roc_auc(y_true, scores) -> float:
    from sklearn.metrics import _ranking

    y = np.asarray(y_true)
    s = np.asarray(scores)
    if len(y) != len(s):
        raise ValueError("length mismatch")
    if len(np.unique(y)) < 2:
        raise ValueError("one class only")
    try:
        fps, tps, _ = _ranking._binary_clf_curve(y, s)
        fpr = np.r_[0, fps] / fps[-1]
        tpr = np.r_[0, tps] / tps[-1]
        return float(np.trapezoid(tpr, fpr))
    except Exception:
        from sklearn.metrics import RocCurveDisplay

        return float(RocCurveDisplay.from_predictions(y, s).roc_auc)
