"""Wrong: leaves the trees unseeded (random_state=None), so ties between equally good splits are broken differently from GBR(random_state=0) and results vary from run to run."""
# fails: test-boosting

# %% grade_id=boosting-answer
import numpy as np
from sklearn.tree import DecisionTreeRegressor


def boosted_predictions(
    X_train, y_train, X_test, n_estimators: int, learning_rate: float, max_depth: int
) -> np.ndarray:
    if n_estimators < 0 or learning_rate <= 0:
        raise ValueError("bad hyper-parameters")
    X = np.asarray(X_train)
    y = np.asarray(y_train, dtype=np.float64)
    Xt = np.asarray(X_test)
    F = np.full(len(y), y.mean())
    out = np.full(len(Xt), y.mean())
    for _ in range(n_estimators):
        tree = DecisionTreeRegressor(max_depth=max_depth).fit(X, y - F)
        F = F + learning_rate * tree.predict(X)
        out = out + learning_rate * tree.predict(Xt)
    return out
