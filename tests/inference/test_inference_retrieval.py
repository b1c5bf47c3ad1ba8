"""Tests for mlcraft.inference.retrieval: cosine top-k against sentence-transformers' semantic_search
and a float64 loop, BM25 search against mlcraft.data.text_features.BM25, fusion against a hand loop."""

from __future__ import annotations

import math
import random
from fractions import Fraction

import numpy as np
import pytest
import torch

from mlcraft.classroom.testing import available_devices
from mlcraft.data.intents import load_pydoc_queries, load_pydoc_topics
from mlcraft.data.text_features import BM25, word_tokens
from mlcraft.inference.retrieval import (
    DenseIndex,
    LexicalIndex,
    cosine_top_k,
    hybrid_search,
    reciprocal_rank_fusion,
)


def _cosine_loop(queries: np.ndarray, corpus: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Float64, one pair at a time; ties by index."""
    all_scores, all_indices = [], []
    for q in queries.astype(np.float64).tolist():
        scored = []
        for j, d in enumerate(corpus.astype(np.float64).tolist()):
            norms = math.sqrt(sum(a * a for a in q)) * math.sqrt(sum(b * b for b in d))
            scored.append((sum(a * b for a, b in zip(q, d, strict=True)) / norms if norms else 0.0, j))
        scored.sort(key=lambda pair: (-pair[0], pair[1]))
        all_scores.append([s for s, _ in scored[:k]])
        all_indices.append([j for _, j in scored[:k]])
    return np.array(all_scores), np.array(all_indices, dtype=np.int64)


def test_cosine_top_k_matches_semantic_search() -> None:
    from sentence_transformers.util import semantic_search

    generator = torch.Generator().manual_seed(0)
    queries = torch.randn(12, 24, generator=generator)
    corpus = torch.randn(700, 24, generator=generator) * torch.rand(700, 1, generator=generator) * 10
    for k in (1, 10, 700, 1000):
        scores, indices = cosine_top_k(queries, corpus, k)
        expected = semantic_search(queries, corpus, top_k=k, corpus_chunk_size=256)
        assert scores.shape == indices.shape == (12, min(k, 700)) and scores.dtype == np.float32
        for q, hits in enumerate(expected):
            assert indices[q].tolist() == [h["corpus_id"] for h in hits], f"query {q}, k={k}: order"
            np.testing.assert_allclose(
                scores[q], [h["score"] for h in hits], rtol=0, atol=1e-6, err_msg=f"query {q}, k={k}: scores"
            )


@pytest.mark.parametrize(("n_queries", "n_docs", "dim", "k"), [(5, 60, 8, 7), (1, 1, 1, 1), (3, 9, 300, 20)])
def test_cosine_top_k_matches_float64_loop(n_queries: int, n_docs: int, dim: int, k: int) -> None:
    rng = np.random.default_rng(n_docs)
    queries, corpus = rng.normal(size=(n_queries, dim)), rng.normal(size=(n_docs, dim))
    scores, indices = cosine_top_k(queries, corpus, k)
    expected_scores, expected_indices = _cosine_loop(queries, corpus, k)
    assert scores.dtype == np.float64 and indices.dtype == np.int64
    np.testing.assert_array_equal(indices, expected_indices, err_msg="float64 ranking")
    np.testing.assert_allclose(scores, expected_scores, rtol=0, atol=1e-12, err_msg="float64 cosines")


def test_ties_are_broken_by_index_and_zero_rows_score_zero() -> None:
    v, w = [3.0, 4.0, 0.0], [0.0, 0.0, 1.0]
    corpus = np.array([w, v, [0.0, 0.0, 0.0], [6.0, 8.0, 0.0], v, [0.0, 0.0, 0.0]], dtype=np.float32)
    scores, indices = cosine_top_k(np.array([v], dtype=np.float32), corpus, 6)
    assert indices.tolist() == [[1, 3, 4, 0, 2, 5]], "equal cosines in index order, 0 and zero rows by index"
    np.testing.assert_allclose(scores, [[1, 1, 1, 0, 0, 0]], rtol=0, atol=1e-7)
    zero_scores, zero_indices = cosine_top_k(np.zeros((1, 3)), corpus.astype(np.float64), 3)
    assert zero_indices.tolist() == [[0, 1, 2]] and zero_scores.tolist() == [[0.0, 0.0, 0.0]]


@pytest.mark.parametrize("scale", [1e-30, 1e-20, 1e15, 1e20, 3e38])
def test_extreme_magnitudes_do_not_overflow_or_underflow(scale: float) -> None:
    rng = np.random.default_rng(1)
    queries, corpus = rng.normal(size=(4, 16)).astype(np.float32), rng.normal(size=(50, 16)).astype(np.float32)
    reference = cosine_top_k(queries, corpus, 10)
    scaled = cosine_top_k(queries * np.float32(scale / 4), corpus * np.float32(scale / 8), 10)
    np.testing.assert_array_equal(scaled[1], reference[1], err_msg=f"ranking at scale {scale}")
    np.testing.assert_allclose(scaled[0], reference[0], rtol=0, atol=1e-6, err_msg=f"scores at scale {scale}")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs_are_upcast(dtype: torch.dtype) -> None:
    generator = torch.Generator().manual_seed(2)
    queries = torch.randn(6, 32, generator=generator).to(dtype)
    corpus = torch.randn(80, 32, generator=generator).to(dtype)
    scores, indices = cosine_top_k(queries, corpus, 5)
    expected_scores, expected_indices = cosine_top_k(queries.float(), corpus.float(), 5)
    assert scores.dtype == np.float32
    np.testing.assert_array_equal(indices, expected_indices, err_msg=str(dtype))
    np.testing.assert_array_equal(scores, expected_scores, err_msg=str(dtype))
    loop_scores, _ = _cosine_loop(queries.float().numpy(), corpus.float().numpy(), 5)
    np.testing.assert_allclose(scores, loop_scores, rtol=0, atol=1e-6, err_msg=f"{dtype} vs float64 loop")


@pytest.mark.parametrize("device", available_devices(), ids=str)
def test_devices_mixed_dtypes_and_autograd_inputs(device: torch.device) -> None:
    generator = torch.Generator().manual_seed(3)
    queries = torch.randn(3, 8, generator=generator, requires_grad=True)
    corpus = torch.randn(20, 8, generator=generator, dtype=torch.float64)
    scores, indices = cosine_top_k(queries.to(device), corpus.to(device), 4)
    expected_scores, expected_indices = _cosine_loop(queries.detach().double().numpy(), corpus.numpy(), 4)
    assert scores.dtype == np.float64, "float32 with float64 promotes to float64"
    np.testing.assert_array_equal(indices, expected_indices, err_msg=str(device))
    np.testing.assert_allclose(scores, expected_scores, rtol=0, atol=1e-7, err_msg=str(device))  # queries were fp32


def test_empty_inputs() -> None:
    scores, indices = cosine_top_k(np.ones((2, 3)), np.zeros((0, 3)), 5)
    assert scores.shape == indices.shape == (2, 0)
    scores, indices = cosine_top_k(np.ones((0, 3)), np.ones((4, 3)), 2)
    assert scores.shape == indices.shape == (0, 2)
    assert DenseIndex(np.zeros((0, 3))).search(np.ones((2, 3)), 3) == [[], []]


@pytest.mark.parametrize(
    ("queries", "corpus", "k", "error", "match"),
    [
        (np.ones((1, 3)), np.ones((2, 3)), 0, ValueError, "k must be an int >= 1, got 0"),
        (np.ones(3), np.ones((2, 3)), 1, ValueError, r"queries must be 2-D \(rows, dim\), got shape \(3,\)"),
        (np.ones((1, 3)), np.ones((2, 4)), 1, ValueError, "same dim, got 3 and 4"),
        (np.ones((1, 3)), np.array([[1.0, 2.0, 3.0], [0.0, np.nan, 1.0]]), 1, ValueError, r"NaN or inf in rows \[1\]"),
        (
            np.ones((1, 3)),
            np.ones((2, 3), dtype=np.int64),
            1,
            TypeError,
            "corpus must hold floats, got dtype torch.int64",
        ),
        (np.ones((1, 3)), np.ones((2, 3)), True, ValueError, "k must be an int >= 1"),
    ],
)
def test_cosine_top_k_rejects_invalid_input(
    queries: np.ndarray, corpus: np.ndarray, k: int, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        cosine_top_k(queries, corpus, k)


def test_dense_index_equals_cosine_top_k() -> None:
    rng = np.random.default_rng(4)
    corpus, queries = rng.normal(size=(200, 12)).astype(np.float32), rng.normal(size=(9, 12)).astype(np.float32)
    index = DenseIndex(torch.from_numpy(corpus))
    assert len(index) == 200
    hits = index.search(queries, 15)
    assert hits == cosine_top_k(queries, corpus, 15)[1].tolist()
    assert all(isinstance(i, int) for row in hits for i in row)
    assert index.search(queries[:1], 500)[0] == cosine_top_k(queries[:1], corpus, 200)[1][0].tolist()


# --- lexical --------------------------------------------------------------------------------


def test_lexical_index_equals_bm25_ranking_on_pydoc() -> None:
    topics = load_pydoc_topics()
    docs = list(topics.values())
    queries = [q for q, _ in load_pydoc_queries()]
    for k1, b in [(1.2, 0.75), (2.0, 0.3)]:
        bm25 = BM25([word_tokens(d) for d in docs], k1=k1, b=b)
        expected = [bm25.top_k(word_tokens(q), 10) for q in queries]
        assert LexicalIndex(docs, k1=k1, b=b).search(queries, 10) == expected, f"k1={k1}, b={b}"
    hits = LexicalIndex(docs).search(["the nonlocal statement"], 3)[0]
    assert list(topics)[hits[0]] == "nonlocal", [list(topics)[i] for i in hits]


def test_lexical_index_edges() -> None:
    index = LexicalIndex(["the cat sat", "a dog barked", "cats and dogs"])
    assert index.search([], 2) == []
    assert index.search(["zebra"], 2) == [[0, 1]], "no matching word: all scores 0, ties by index"
    assert index.search(["dog"], 5)[0][0] == 1 and len(index.search(["dog"], 5)[0]) == 3
    with pytest.raises(TypeError, match="not one string"):
        index.search("dog", 2)
    with pytest.raises(TypeError, match="not one string"):
        LexicalIndex("the cat sat")
    with pytest.raises(ValueError, match="k must be an int >= 1, got 0"):
        index.search(["dog"], 0)


# --- fusion ---------------------------------------------------------------------------------


def _rrf_loop(rankings: list[list[int]], k: int) -> list[int]:
    """Exact sums; order: by score descending, then by first appearance."""
    first_seen: list[int] = []
    for ranking in rankings:
        for doc in ranking:
            if doc not in first_seen:
                first_seen.append(doc)
    totals = {doc: Fraction(0) for doc in first_seen}
    for ranking in rankings:
        for position in range(len(ranking)):
            totals[ranking[position]] += Fraction(1, k + position + 1)
    return sorted(first_seen, key=lambda doc: (-totals[doc], first_seen.index(doc)))


def test_rrf_matches_loop_on_random_rankings() -> None:
    rng = random.Random(0)
    for trial in range(300):
        n_rankings = rng.randint(1, 4)
        rankings = [rng.sample(range(30), rng.randint(0, 15)) for _ in range(n_rankings)]
        k = rng.choice([0, 1, 5, 60])
        expected = _rrf_loop(rankings, k)
        assert reciprocal_rank_fusion(rankings, k=k) == expected, f"trial {trial}: {rankings}, k={k}"
        assert reciprocal_rank_fusion(rankings, k=k, top=3) == expected[:3]


def test_rrf_hand_values() -> None:
    # Document 2 is second in both lists (2/62) and beats 1 and 3 (1/61 each), which tie: first appearance.
    assert reciprocal_rank_fusion([[1, 2], [3, 2]]) == [2, 1, 3]
    assert reciprocal_rank_fusion([[1, 2, 3], [3, 2, 1]], k=0) == [1, 3, 2]  # 1 + 1/3 > 1/2 + 1/2
    assert reciprocal_rank_fusion([[5, 6], [6, 5]]) == [5, 6], "a tie keeps first appearance"
    assert reciprocal_rank_fusion([]) == [] and reciprocal_rank_fusion([[], []]) == []
    assert reciprocal_rank_fusion([[4, 7, 1]]) == [4, 7, 1], "one ranking is returned unchanged"


@pytest.mark.parametrize("first", ["a", "b"])
def test_rrf_exact_ties_survive_float_rounding(first: str) -> None:
    """1/66 + 1/99 == 1/72 + 1/88 exactly, but not in float64 sums: first appearance must still win."""
    assert 1 / 66 + 1 / 99 != 1 / 72 + 1 / 88
    a, b = 100, 200  # a at ranks (6, 39), b at ranks (12, 28), with k = 60
    ranking_0 = list(range(1000, 1011))  # eleven filler documents
    ranking_0.insert(5, a)
    ranking_0.insert(11, b)
    ranking_1 = list(range(2000, 2038))
    ranking_1.insert(27, b)
    ranking_1.insert(38, a)
    assert ranking_0.index(a) == 5 and ranking_0.index(b) == 11 and ranking_1.index(b) == 27
    assert ranking_1.index(a) == 38
    rankings = [ranking_0, ranking_1] if first == "a" else [ranking_1, ranking_0]  # ranking_1 lists b first
    fused = reciprocal_rank_fusion(rankings)
    expected_order = [a, b] if first == "a" else [b, a]
    assert [d for d in fused if d in (a, b)] == expected_order
    assert fused == _rrf_loop(rankings, 60)


def test_rrf_rejects_invalid_input() -> None:
    with pytest.raises(ValueError, match=r"ranking 1 lists an id more than once: \[3, 4, 3\]"):
        reciprocal_rank_fusion([[1], [3, 4, 3]])
    with pytest.raises(ValueError, match="k must be an int >= 0, got -1"):
        reciprocal_rank_fusion([[1]], k=-1)
    with pytest.raises(ValueError, match="top must be an int >= 1, got 0"):
        reciprocal_rank_fusion([[1]], top=0)


def test_hybrid_search_fuses_each_query() -> None:
    lexical = [[1, 2, 3], [9, 8], []]
    dense = [[3, 2, 1], [7, 9], [5]]
    assert hybrid_search(lexical, dense, k=2) == [
        reciprocal_rank_fusion([lex, den], k=60, top=2) for lex, den in zip(lexical, dense, strict=True)
    ]
    assert hybrid_search(lexical, dense, k=5, rrf_k=0) == [[1, 3, 2], [9, 7, 8], [5]]
    assert hybrid_search([], [], k=3) == []
    with pytest.raises(ValueError, match="got 2 and 1"):
        hybrid_search([[1], [2]], [[1]], k=1)
    with pytest.raises(ValueError, match="k must be an int >= 1"):
        hybrid_search([[1]], [[1]], k=0)
