"""Ranking-metric speed: ``mlcraft.evaluation.roc_auc`` and ``pr_auc`` vs scikit-learn's
``roc_auc_score`` and ``average_precision_score`` on the same 10M scores, same run (interleaved);
the numbers must agree to 1e-12. Half the runs use scores rounded to 3 decimals (heavy ties).

    python benchmarks/bench_classification.py [--n 10000000] [--repeats 3]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from _timing import interleaved_medians
from sklearn.metrics import average_precision_score, roc_auc_score  # type: ignore[import-untyped]

from mlcraft.evaluation import pr_auc, roc_auc


def bench(name: str, labels: np.ndarray, scores: np.ndarray, repeats: int) -> None:
    """Time both metrics against sklearn on one set of scores and print the ratios."""
    pairs = {
        "roc_auc": (lambda: roc_auc(labels, scores), lambda: roc_auc_score(labels, scores)),
        "pr_auc": (lambda: pr_auc(labels, scores), lambda: average_precision_score(labels, scores)),
    }
    for metric, (ours, peer) in pairs.items():
        diff = abs(ours() - peer())
        assert diff <= 1e-12, f"{metric} on {name} scores differs from sklearn by {diff}"
        times = interleaved_medians({"ours": ours, "sklearn": peer}, torch.device("cpu"), repeats, warmup=1)
        print(
            f"{metric:8s} {len(scores)} {name:8s} scores: mlcraft {times['ours']:.2f} s   "
            f"sklearn {times['sklearn']:.2f} s   speed-up {times['sklearn'] / times['ours']:.2f}x   |diff| {diff:.1e}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    labels = rng.random(args.n) < 0.05
    scores = rng.normal(size=args.n) + labels
    bench("distinct", labels, scores, args.repeats)
    bench("tied", labels, np.round(scores, 3), args.repeats)


if __name__ == "__main__":
    main()
