"""Ranking metrics for retrieval with binary relevance: recall@k, MRR and nDCG@k (04_nlp).

Definitions follow Manning, Raghavan & Schütze, "Introduction to Information Retrieval" (2008),
chapter 8 (https://nlp.stanford.edu/IR-book/html/htmledition/evaluation-in-information-retrieval-1.html):

- recall@k: ``|top-k ∩ relevant| / |relevant|``, averaged over queries.
- MRR (Voorhees, 1999, TREC-8 question answering track): ``1 / rank`` of the first relevant item
  (ranks start at 1), 0 when none is in the top ``k``; averaged over queries.
- nDCG@k (Järvelin & Kekäläinen, 2002, https://doi.org/10.1145/582415.582418) with binary gains and
  the ``log2(rank + 1)`` discount: ``DCG@k = Σ_{r ≤ k, item r relevant} 1 / log2(r + 1)`` divided by
  the DCG of an ideal ranking, ``Σ_{r=1}^{min(k, |relevant|)} 1 / log2(r + 1)``. This equals
  ``sklearn.metrics.ndcg_score(..., k=k)`` on the equivalent score matrix.

Inputs: ``ranked[q]`` lists the ids a system returned for query ``q``, best first, any hashable ids
(ints, strings), no id twice; it may be shorter than ``k`` (missing ranks count as irrelevant).
``relevant[q]`` is the collection of ids that answer query ``q``, at least one. Every metric is the
mean over queries, in float64.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Hashable, Sequence

__all__ = ["mrr", "ndcg_at_k", "recall_at_k"]

Rankings = Sequence[Sequence[Hashable]]
Relevant = Sequence[Collection[Hashable]]


def _check(ranked: Rankings, relevant: Relevant, k: int | None) -> list[set[Hashable]]:
    """Validate the inputs; returns the relevant ids of each query as sets."""
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        raise ValueError(f"k must be an int >= 1, got {k!r}")
    if len(ranked) != len(relevant):
        raise ValueError(f"ranked and relevant must hold as many queries, got {len(ranked)} and {len(relevant)}")
    if len(ranked) == 0:
        raise ValueError("no queries: ranked and relevant are empty")
    sets: list[set[Hashable]] = []
    for q, (ranking, answers) in enumerate(zip(ranked, relevant, strict=True)):
        if len(set(ranking)) != len(ranking):
            repeated = [item for item, count in Counter(ranking).items() if count > 1]
            raise ValueError(f"query {q}: ranking has duplicate ids {repeated[:5]}")
        answer_set = set(answers)
        if not answer_set:
            raise ValueError(f"query {q} has no relevant item; drop it or give its relevant ids")
        sets.append(answer_set)
    return sets


def _discount(rank: int) -> float:
    return 1.0 / math.log2(rank + 1)


def recall_at_k(ranked: Rankings, relevant: Relevant, k: int) -> float:
    """Mean over queries of ``|ranked[q][:k] ∩ relevant[q]| / |relevant[q]|``, in [0, 1].

    Raises:
        ValueError: ``k < 1``, lengths differ, no queries, a query without relevant ids, duplicate ids in a ranking.
    """
    answers = _check(ranked, relevant, k)
    total = 0.0
    for ranking, answer_set in zip(ranked, answers, strict=True):
        total += sum(item in answer_set for item in ranking[:k]) / len(answer_set)
    return total / len(answers)


def mrr(ranked: Rankings, relevant: Relevant, k: int | None = None) -> float:
    """Mean reciprocal rank of the first relevant id, looking at the top ``k`` (``None``: the whole ranking).

    A query whose top ``k`` holds no relevant id contributes 0.

    Raises:
        ValueError: as :func:`recall_at_k` (``k`` is checked only when given).
    """
    answers = _check(ranked, relevant, k)
    total = 0.0
    for ranking, answer_set in zip(ranked, answers, strict=True):
        top = ranking if k is None else ranking[:k]
        rank = next((r for r, item in enumerate(top, start=1) if item in answer_set), None)
        total += 0.0 if rank is None else 1.0 / rank
    return total / len(answers)


def ndcg_at_k(ranked: Rankings, relevant: Relevant, k: int) -> float:
    """Mean over queries of ``DCG@k / ideal DCG@k`` with binary gains and ``1 / log2(rank + 1)`` discounts.

    Raises:
        ValueError: as :func:`recall_at_k`.
    """
    answers = _check(ranked, relevant, k)
    total = 0.0
    for ranking, answer_set in zip(ranked, answers, strict=True):
        dcg = sum(_discount(rank) for rank, item in enumerate(ranking[:k], start=1) if item in answer_set)
        ideal = sum(_discount(rank) for rank in range(1, min(k, len(answer_set)) + 1))
        total += dcg / ideal
    return total / len(answers)
