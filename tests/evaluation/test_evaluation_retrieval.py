"""Tests for mlcraft.evaluation.retrieval against float64 loops and sklearn.metrics.ndcg_score."""

from __future__ import annotations

import math
import random
from collections.abc import Collection, Hashable, Sequence

import numpy as np
import pytest
from sklearn.metrics import ndcg_score  # type: ignore[import-untyped]

from mlcraft.evaluation.retrieval import mrr, ndcg_at_k, recall_at_k

TOL = 1e-12


# Oracles: one query at a time, written from the definitions.
def _recall_loop(ranking: Sequence[Hashable], relevant: Collection[Hashable], k: int) -> float:
    hits = 0
    for position in range(min(k, len(ranking))):
        if ranking[position] in relevant:
            hits += 1
    return hits / len(relevant)


def _rr_loop(ranking: Sequence[Hashable], relevant: Collection[Hashable], k: int | None) -> float:
    depth = len(ranking) if k is None else min(k, len(ranking))
    for position in range(depth):
        if ranking[position] in relevant:
            return 1.0 / (position + 1)
    return 0.0


def _ndcg_loop(ranking: Sequence[Hashable], relevant: Collection[Hashable], k: int) -> float:
    dcg = 0.0
    for position in range(min(k, len(ranking))):
        if ranking[position] in relevant:
            dcg += 1.0 / math.log2(position + 2)
    ideal = 0.0
    for position in range(min(k, len(relevant))):
        ideal += 1.0 / math.log2(position + 2)
    return dcg / ideal


def _random_case(rng: random.Random, n_queries: int, n_docs: int, depth: int) -> tuple[list[list[int]], list[set[int]]]:
    """Rankings of ``depth`` distinct doc ids (truncated: some relevant ids are never retrieved)."""
    ranked = [rng.sample(range(n_docs), depth) for _ in range(n_queries)]
    relevant = [set(rng.sample(range(n_docs), rng.randint(1, 6))) for _ in range(n_queries)]
    return ranked, relevant


@pytest.mark.parametrize("k", [1, 2, 5, 10, 30])
@pytest.mark.parametrize("depth", [3, 20])
def test_random_rankings_match_loops(k: int, depth: int) -> None:
    rng = random.Random(k * 100 + depth)
    ranked, relevant = _random_case(rng, n_queries=200, n_docs=40, depth=depth)
    cases = {
        "recall": (
            recall_at_k(ranked, relevant, k),
            [_recall_loop(r, s, k) for r, s in zip(ranked, relevant, strict=True)],
        ),
        "mrr": (mrr(ranked, relevant, k), [_rr_loop(r, s, k) for r, s in zip(ranked, relevant, strict=True)]),
        "ndcg": (ndcg_at_k(ranked, relevant, k), [_ndcg_loop(r, s, k) for r, s in zip(ranked, relevant, strict=True)]),
    }
    for name, (ours, per_query) in cases.items():
        expected = math.fsum(per_query) / len(per_query)
        assert abs(ours - expected) <= TOL, f"{name}@{k}, depth {depth}: {ours} vs loop {expected}"
    full = mrr(ranked, relevant)
    assert abs(full - math.fsum(_rr_loop(r, s, None) for r, s in zip(ranked, relevant, strict=True)) / 200) <= TOL


@pytest.mark.parametrize("k", [1, 3, 7, 25])
def test_ndcg_matches_sklearn(k: int) -> None:
    rng = np.random.default_rng(k)
    n_queries, n_docs = 60, 25
    ranked: list[list[int]] = []
    relevant: list[set[int]] = []
    y_true = np.zeros((n_queries, n_docs))
    y_score = np.zeros((n_queries, n_docs))
    for q in range(n_queries):
        order = rng.permutation(n_docs).tolist()  # a full ranking of every document: no ties for sklearn
        answers = set(rng.choice(n_docs, size=int(rng.integers(1, 8)), replace=False).tolist())
        ranked.append(order)
        relevant.append(answers)
        y_true[q, list(answers)] = 1.0
        y_score[q, order] = np.arange(n_docs, 0, -1)  # first in the ranking gets the highest score
    expected = float(ndcg_score(y_true, y_score, k=k))
    ours = ndcg_at_k(ranked, relevant, k)
    assert abs(ours - expected) <= TOL, f"ndcg@{k}: {ours} vs sklearn {expected}"


def test_hand_values_and_hashable_ids() -> None:
    ranked = [["try", "with", "raise"], ["for", "while"]]
    relevant = [{"raise", "exceptions"}, {"while"}]
    assert recall_at_k(ranked, relevant, 2) == (0.0 + 1.0) / 2
    assert recall_at_k(ranked, relevant, 3) == (0.5 + 1.0) / 2
    assert mrr(ranked, relevant) == (1 / 3 + 1 / 2) / 2
    assert mrr(ranked, relevant, k=2) == (0.0 + 1 / 2) / 2
    ideal_first = 1 / math.log2(2) + 1 / math.log2(3)
    assert ndcg_at_k(ranked, relevant, 3) == pytest.approx(((1 / math.log2(4)) / ideal_first + (1 / math.log2(3))) / 2)
    assert ndcg_at_k([[1, 2, 3]], [[1, 2, 3]], 3) == 1.0
    assert ndcg_at_k([[9, 8, 1]], [{1}], 1) == 0.0
    assert recall_at_k([[0]], [[0]], 1) == mrr([[0]], [[0]]) == ndcg_at_k([[0]], [[0]], 1) == 1.0


def test_short_and_empty_rankings_and_large_k() -> None:
    assert recall_at_k([[], [1]], [{1}, {1, 2}], 10) == 0.25
    assert mrr([[], [1]], [{1}, {1}], 10) == 0.5
    assert ndcg_at_k([[]], [{1}], 5) == 0.0
    big = 10**9  # k far beyond any ranking: no k-sized allocation
    assert ndcg_at_k([[3, 1]], [{1}], big) == pytest.approx(1 / math.log2(3))
    assert recall_at_k([[3, 1]], [{1, 4}], big) == 0.5
    assert ndcg_at_k([[1, 2]], [{1, 2, 3}], 2) == 1.0, "the ideal DCG uses min(k, |relevant|) items"


def test_tuples_and_lists_of_relevant_ids() -> None:
    assert recall_at_k(((1, 2, 3),), ([3, 1],), 2) == 0.5
    assert recall_at_k([[1, 2]], [[1, 1]], 1) == 1.0, "repeated relevant ids count once"


@pytest.mark.parametrize("fn", [recall_at_k, mrr, ndcg_at_k])
def test_invalid_inputs(fn: object) -> None:
    call = fn  # a callable(ranked, relevant, k)
    with pytest.raises(ValueError, match="k must be an int >= 1, got 0"):
        call([[1]], [{1}], 0)  # type: ignore[operator]
    with pytest.raises(ValueError, match="got 2 and 1"):
        call([[1], [2]], [{1}], 1)  # type: ignore[operator]
    with pytest.raises(ValueError, match="query 1 has no relevant item"):
        call([[1], [2]], [{1}, set()], 1)  # type: ignore[operator]
    with pytest.raises(ValueError, match=r"query 0: ranking has duplicate ids \[2\]"):
        call([[2, 1, 2]], [{1}], 1)  # type: ignore[operator]
    with pytest.raises(ValueError, match="no queries"):
        call([], [], 1)  # type: ignore[operator]
    with pytest.raises(ValueError, match="k must be an int >= 1"):
        call([[1]], [{1}], True)  # type: ignore[operator]
