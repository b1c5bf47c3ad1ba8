"""Shrinks the test predictions but not the training ones, so later residuals are wrong."""

# fails: test-boosting
# %% grade_id=boosting-answer
import numpy as np
from sklearn.tree import DecisionTreeRegressor


def boosted_predictions(X_train, y_train, X_test, n_estimators, learning_rate, max_depth):
    if n_estimators < 0 or learning_rate <= 0:
        raise ValueError("bad hyper-parameters")
    y = np.asarray(y_train, dtype=np.float64)
    f_train, f_test = np.full(len(y), y.mean()), np.full(len(X_test), y.mean())
    rng = np.random.RandomState(0)
    for _ in range(n_estimators):
        tree = DecisionTreeRegressor(max_depth=max_depth, random_state=rng).fit(X_train, y - f_train)
        f_train = f_train + tree.predict(X_train)
        f_test = f_test + learning_rate * tree.predict(X_test)
    return f_test
