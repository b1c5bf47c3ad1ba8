"""Gradient-boosting libraries on one table, same run: fit and predict time and test AUC of
XGBoost, LightGBM, CatBoost and scikit-learn's ``HistGradientBoostingClassifier`` (the baseline
of the ratios), then ``mlcraft.models.boosting.GradientBoosting`` against scikit-learn's
``GradientBoostingClassifier`` on a subsample (the exact, unbinned algorithm is much slower).

Comparable settings: ``--trees`` trees, learning rate 0.1, 31 leaves grown best-first
(XGBoost ``lossguide``, LightGBM ``num_leaves``, HistGB ``max_leaf_nodes``; CatBoost grows
its native symmetric trees, depth 5 = 32 leaves), 255/256 bins, no L2 penalty where the library
allows it (CatBoost keeps its default), 2 threads, early stopping off. The table is a seeded
``make_classification`` set (10 features, 6 informative, 5% flipped labels), 80/20 split.

    python benchmarks/bench_boosting.py [--rows 200000] [--trees 100] [--subsample 20000] [--repeats 1]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import catboost
import lightgbm
import numpy as np
import xgboost
from sklearn.datasets import make_classification  # type: ignore[import-untyped]
from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier  # type: ignore[import-untyped]
from sklearn.metrics import roc_auc_score  # type: ignore[import-untyped]
from sklearn.model_selection import train_test_split  # type: ignore[import-untyped]
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from mlcraft.models.boosting import GradientBoosting, GradientBoostingConfig

THREADS = 2
LEAVES = 31
LEARNING_RATE = 0.1


def median_time(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    """Median wall time of ``fn()`` over ``repeats`` runs, and the last run's result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def libraries(trees: int) -> dict[str, Callable[[], object]]:
    """Unfitted classifiers with comparable settings, by name; the first one is the baseline."""
    return {
        "sklearn HistGB": lambda: HistGradientBoostingClassifier(
            max_iter=trees,
            learning_rate=LEARNING_RATE,
            max_leaf_nodes=LEAVES,
            max_depth=None,
            min_samples_leaf=20,
            l2_regularization=0.0,
            max_bins=255,
            early_stopping=False,
            random_state=0,
        ),
        "xgboost": lambda: xgboost.XGBClassifier(
            n_estimators=trees,
            learning_rate=LEARNING_RATE,
            tree_method="hist",
            grow_policy="lossguide",
            max_leaves=LEAVES,
            max_depth=0,
            max_bin=256,
            reg_lambda=0.0,
            n_jobs=THREADS,
            random_state=0,
        ),
        "lightgbm": lambda: lightgbm.LGBMClassifier(
            n_estimators=trees,
            learning_rate=LEARNING_RATE,
            num_leaves=LEAVES,
            max_depth=-1,
            min_child_samples=20,
            reg_lambda=0.0,
            max_bin=255,
            n_jobs=THREADS,
            random_state=0,
            verbose=-1,
        ),
        "catboost": lambda: catboost.CatBoostClassifier(
            iterations=trees,
            learning_rate=LEARNING_RATE,
            depth=5,
            border_count=254,
            thread_count=THREADS,
            random_seed=0,
            verbose=0,
            allow_writing_files=False,
        ),
    }


def bench_libraries(x_train, y_train, x_test, y_test, trees: int, repeats: int) -> None:
    """Fit, predict and score each library; print a table with ratios to HistGB."""
    rows = []
    for name, make in libraries(trees).items():
        fit_s, model = median_time(lambda make=make: make().fit(x_train, y_train), repeats)
        predict_s, proba = median_time(lambda model=model: model.predict_proba(x_test)[:, 1], repeats)
        rows.append((name, fit_s, predict_s, roc_auc_score(y_test, proba)))
    _, base_fit, base_predict, base_auc = rows[0]
    print(
        f"{len(x_train)} train / {len(x_test)} test rows, {x_train.shape[1]} features, {trees} trees, {THREADS} threads"
    )
    print(
        f"{'library':16s} {'fit s':>8s} {'x HistGB':>9s} {'predict s':>10s} {'x HistGB':>9s} {'test AUC':>9s} {'- HistGB':>9s}"
    )
    for name, fit_s, predict_s, auc in rows:
        print(
            f"{name:16s} {fit_s:8.2f} {fit_s / base_fit:8.2f}x {predict_s:10.3f} {predict_s / base_predict:8.2f}x "
            f"{auc:9.4f} {auc - base_auc:+9.4f}"
        )


def bench_by_hand(x_train, y_train, x_test, y_test, trees: int, repeats: int) -> None:
    """Our exact gradient boosting against sklearn's ``GradientBoostingClassifier``, same settings."""
    settings = {"n_estimators": trees, "learning_rate": LEARNING_RATE, "max_depth": 3, "random_state": 0}
    ours_fit, ours = median_time(
        lambda: GradientBoosting(GradientBoostingConfig(loss="log_loss", **settings)).fit(x_train, y_train), repeats
    )
    peer_fit, peer = median_time(lambda: GradientBoostingClassifier(**settings).fit(x_train, y_train), repeats)
    ours_predict, ours_proba = median_time(lambda: ours.predict_proba(x_test)[:, 1], repeats)
    peer_predict, peer_proba = median_time(lambda: peer.predict_proba(x_test)[:, 1], repeats)
    print(f"\nexact GB on a {len(x_train)}-row subsample ({trees} trees, depth 3), scored on the same test rows:")
    print(
        f"fit      mlcraft {ours_fit:6.2f} s   sklearn GB {peer_fit:6.2f} s   ratio (ours / sklearn) {ours_fit / peer_fit:.2f}x"
    )
    print(
        f"predict  mlcraft {ours_predict:6.3f} s   sklearn GB {peer_predict:6.3f} s   "
        f"ratio (ours / sklearn) {ours_predict / peer_predict:.2f}x"
    )
    print(
        f"test AUC mlcraft {roc_auc_score(y_test, ours_proba):.4f}   sklearn GB {roc_auc_score(y_test, peer_proba):.4f}   "
        f"max |p_ours - p_sklearn| {np.max(np.abs(ours_proba - peer_proba)):.1e}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000, help="rows in the generated table (80%% train)")
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--subsample", type=int, default=20_000, help="training rows for the exact GB pair")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    x, y = make_classification(
        n_samples=args.rows, n_features=10, n_informative=6, n_redundant=2, flip_y=0.05, random_state=0
    )
    x = x.astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    with threadpool_limits(THREADS):  # HistGB's OpenMP, and BLAS anywhere
        bench_libraries(x_train, y_train, x_test, y_test, args.trees, args.repeats)
        n_sub = min(args.subsample, len(x_train))
        bench_by_hand(x_train[:n_sub], y_train[:n_sub], x_test, y_test, args.trees, args.repeats)


if __name__ == "__main__":
    main()
