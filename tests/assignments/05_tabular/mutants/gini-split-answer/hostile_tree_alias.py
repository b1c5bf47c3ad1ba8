"""Hostile: fits a scikit-learn depth-1 tree anyway (imported from the private sklearn.tree._classes module under an alias) and reads threshold and child impurities from tree_."""
# fails: test-gini-split

# %% grade_id=gini-split-answer
import numpy as np


def best_gini_split(x, y) -> tuple[float, float]:
    from sklearn.tree._classes import DecisionTreeClassifier as _Stump

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y)
    if np.unique(x).size < 2:
        raise ValueError("constant feature")
    t = _Stump(max_depth=1, random_state=0).fit(x[:, None], y).tree_
    if t.node_count < 3:
        u = np.unique(x)
        return float((u[0] + u[1]) / 2), float(t.impurity[0])
    n = t.n_node_samples
    imp = (n[1] * t.impurity[1] + n[2] * t.impurity[2]) / n[0]
    return float(t.threshold[0]), float(imp)
