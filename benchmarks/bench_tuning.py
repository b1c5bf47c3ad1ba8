"""Hyper-parameter search at equal trial budgets: Optuna's TPE sampler with a median pruner vs
random search (Optuna's ``RandomSampler``, same space) vs a grid, tuning scikit-learn's
``HistGradientBoostingClassifier`` by 3-fold cross-validated AUC, same folds for every method.

Space: ``learning_rate`` log-uniform [0.01, 0.3], ``max_leaf_nodes`` log-int [4, 64],
``min_samples_leaf`` log-int [2, 100], ``l2_regularization`` log-uniform [1e-4, 10];
``max_iter`` fixed (``--iters``), early stopping off. TPE and random search run ``max(budgets)``
trials once and are read at each budget (best completed trial so far); the grid is built anew
for each budget, as many levels per parameter as fit in it (a single level is the range's
geometric middle). A pruned TPE trial counts against the budget but is never "best".

Data: scikit-learn's breast_cancer (569 rows, easy) and a harder seeded ``make_classification``
set (1500 rows, 20 features, 5 informative, 15% flipped labels, classes close together).

    python benchmarks/bench_tuning.py [--budgets 10 20 40] [--iters 20] [--seed 0]
"""

from __future__ import annotations

import argparse
import itertools
import math
import time
from collections.abc import Callable

import numpy as np
import optuna
from sklearn.datasets import load_breast_cancer, make_classification  # type: ignore[import-untyped]
from sklearn.ensemble import HistGradientBoostingClassifier  # type: ignore[import-untyped]
from sklearn.metrics import roc_auc_score  # type: ignore[import-untyped]
from sklearn.model_selection import StratifiedKFold  # type: ignore[import-untyped]
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

# name: (low, high, integer); all sampled on a log scale
SPACE: dict[str, tuple[float, float, bool]] = {
    "learning_rate": (0.01, 0.3, False),
    "max_leaf_nodes": (4, 64, True),
    "min_samples_leaf": (2, 100, True),
    "l2_regularization": (1e-4, 10.0, False),
}


class CrossValidation:
    """3-fold stratified CV AUC of a HistGB with given parameters; counts the fits it runs."""

    def __init__(self, x: np.ndarray, y: np.ndarray, iters: int, seed: int) -> None:
        self.x, self.y, self.iters, self.seed = x, y, iters, seed
        self.folds = list(StratifiedKFold(3, shuffle=True, random_state=seed).split(x, y))
        self.fits = 0

    def fold_scores(self, params: dict[str, float]):
        """Yield the AUC of each fold in turn (so a pruner can stop early)."""
        for train, test in self.folds:
            model = HistGradientBoostingClassifier(
                max_iter=self.iters, early_stopping=False, random_state=self.seed, **params
            )
            model.fit(self.x[train], self.y[train])
            self.fits += 1
            yield roc_auc_score(self.y[test], model.predict_proba(self.x[test])[:, 1])

    def score(self, params: dict[str, float]) -> float:
        return float(np.mean(list(self.fold_scores(params))))


def suggest(trial: optuna.Trial) -> dict[str, float]:
    params: dict[str, float] = {}
    for name, (low, high, integer) in SPACE.items():
        if integer:
            params[name] = trial.suggest_int(name, int(low), int(high), log=True)
        else:
            params[name] = trial.suggest_float(name, low, high, log=True)
    return params


def run_optuna(cv: CrossValidation, sampler: optuna.samplers.BaseSampler, trials: int, prune: bool) -> list[float]:
    """Best completed CV AUC after each trial (NaN until the first trial completes)."""

    def objective(trial: optuna.Trial) -> float:
        scores = []
        for step, auc in enumerate(cv.fold_scores(suggest(trial))):
            scores.append(auc)
            if prune:
                trial.report(float(np.mean(scores)), step)
                if trial.should_prune():
                    raise optuna.TrialPruned()
        return float(np.mean(scores))

    pruner = optuna.pruners.MedianPruner(n_startup_trials=5) if prune else optuna.pruners.NopPruner()
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)
    study.optimize(objective, n_trials=trials)
    best, curve = -math.inf, []
    for trial in study.trials:
        if trial.state == optuna.trial.TrialState.COMPLETE:
            best = max(best, float(trial.value))  # type: ignore[arg-type]
        curve.append(best if best > -math.inf else math.nan)
    return curve


def grid(budget: int) -> list[dict[str, float]]:
    """The largest grid within ``budget`` points: levels added to one parameter at a time, in turn."""
    levels = dict.fromkeys(SPACE, 1)
    grown = True
    while grown:
        grown = False
        for name in SPACE:
            trial = {**levels, name: levels[name] + 1}
            if math.prod(trial.values()) <= budget:
                levels, grown = trial, True
    axes = []
    for name, (low, high, integer) in SPACE.items():
        values = (
            np.geomspace(low, high, levels[name] + 2)[1:-1]
            if levels[name] == 1
            else np.geomspace(low, high, levels[name])
        )
        axes.append([round(float(v)) if integer else float(v) for v in values])
    return [dict(zip(SPACE, point, strict=True)) for point in itertools.product(*axes)]


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def bench(name: str, x: np.ndarray, y: np.ndarray, budgets: list[int], iters: int, seed: int) -> None:
    most = max(budgets)
    results: dict[str, tuple[list[float], list[int], float, int]] = {}  # method: best per budget, trials, s, fits

    cv = CrossValidation(x, y, iters, seed)
    curve, seconds = timed(lambda: run_optuna(cv, optuna.samplers.TPESampler(seed=seed), most, prune=True))
    results["optuna TPE+pruner"] = ([curve[b - 1] for b in budgets], list(budgets), seconds, cv.fits)  # type: ignore[index]
    tpe_curve: list[float] = curve  # type: ignore[assignment]

    cv = CrossValidation(x, y, iters, seed)
    curve, seconds = timed(lambda: run_optuna(cv, optuna.samplers.RandomSampler(seed=seed), most, prune=False))
    results["random search"] = ([curve[b - 1] for b in budgets], list(budgets), seconds, cv.fits)  # type: ignore[index]
    random_best = curve[most - 1]  # type: ignore[index]

    cv = CrossValidation(x, y, iters, seed)
    start, bests, sizes = time.perf_counter(), [], []
    for budget in budgets:
        points = grid(budget)
        sizes.append(len(points))
        bests.append(max(cv.score(p) for p in points))
    results["grid"] = (bests, sizes, time.perf_counter() - start, cv.fits)

    print(f"\n{name}: {len(x)} rows, {x.shape[1]} features; best 3-fold CV AUC at each trial budget")
    print(f"{'method':18s} " + " ".join(f"{'@' + str(b):>8s}" for b in budgets) + f" {'fits':>6s} {'time s':>7s}")
    for method, (bests, sizes, seconds, fits) in results.items():
        cells = " ".join(f"{v:8.4f}" for v in bests)
        note = "" if sizes == budgets else f"  (grid points used: {', '.join(map(str, sizes))})"
        print(f"{method:18s} {cells} {fits:6d} {seconds:7.1f}{note}")
    reached = next((i + 1 for i, v in enumerate(tpe_curve) if v >= random_best), None)
    if reached is None:
        print(f"optuna did not reach random search's best at {most} ({random_best:.4f}) within {most} trials")
    else:
        print(
            f"optuna reached random search's best at {most} ({random_best:.4f}) at trial {reached}: "
            f"{reached / most:.2f}x the trials"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=int, nargs="+", default=[10, 20, 40])
    parser.add_argument("--iters", type=int, default=20, help="boosting iterations of every HistGB")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    budgets = sorted(args.budgets)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cancer = load_breast_cancer()
    hard_x, hard_y = make_classification(
        n_samples=1500, n_features=20, n_informative=5, n_redundant=5, flip_y=0.15, class_sep=0.5, random_state=1
    )
    with threadpool_limits(2):
        bench("breast_cancer", cancer.data, cancer.target, budgets, args.iters, args.seed)
        bench("generated (hard)", hard_x, hard_y, budgets, args.iters, args.seed)


if __name__ == "__main__":
    main()
