"""Wrong: forgets the learning_rate error case (only n_estimators < 0 raises); learning_rate <= 0 is silently used."""
# fails: test-boosting

# %% grade_id=boosting-answer
import numpy as np
from sklearn.tree import DecisionTreeRegressor


def boosted_predictions(
    X_train, y_train, X_test, n_estimators: int, learning_rate: float, max_depth: int
) -> np.ndarray:
    if n_estimators < 0:
        raise ValueError("n_estimators must be >= 0")
    X = np.asarray(X_train)
    y = np.asarray(y_train, dtype=np.float64)
    Xt = np.asarray(X_test)
    F = np.full(len(y), y.mean())
    out = np.full(len(Xt), y.mean())
    rng = np.random.RandomState(0)
    for _ in range(n_estimators):
        tree = DecisionTreeRegressor(max_depth=max_depth, random_state=rng).fit(X, y - F)
        F = F + learning_rate * tree.predict(X)
        out = out + learning_rate * tree.predict(Xt)
    return out
