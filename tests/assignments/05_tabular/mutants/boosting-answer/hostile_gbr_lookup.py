"""Hostile: fetches GradientBoostingRegressor by name from sklearn.utils.all_estimators() (private-module path, no import naming it) and returns its predictions."""
# fails: test-boosting

# %% grade_id=boosting-answer
import numpy as np


def boosted_predictions(
    X_train, y_train, X_test, n_estimators: int, learning_rate: float, max_depth: int
) -> np.ndarray:
    from sklearn.utils import all_estimators

    if n_estimators < 0 or learning_rate <= 0:
        raise ValueError("bad hyper-parameters")
    y = np.asarray(y_train, dtype=np.float64)
    if n_estimators == 0:
        return np.full(len(X_test), y.mean())
    est = dict(all_estimators(type_filter="regressor"))["Gradient" + "Boosting" + "Regressor"]
    model = est(n_estimators=n_estimators, learning_rate=learning_rate, max_depth=max_depth, random_state=0)
    return model.fit(np.asarray(X_train), y).predict(np.asarray(X_test)).astype(np.float64)
