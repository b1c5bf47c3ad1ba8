"""Tests for mlcraft.data.text_features: TF-IDF against scikit-learn's ``TfidfVectorizer``, BM25
against ``rank_bm25.BM25Okapi`` (with Lucene's idf swapped in) and a float64 loop, to 1e-12."""

from __future__ import annotations

import math
import random
from collections import Counter

import numpy as np
import pytest
from numpy.typing import NDArray
from rank_bm25 import BM25Okapi  # type: ignore[import-untyped]  # no stubs
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer  # type: ignore[import-untyped]

from mlcraft.data.text import stdlib_corpus
from mlcraft.data.text_features import BM25, bm25_scores, tfidf, word_tokens

TOL = 1e-12  # TF-IDF entries are in [0, 1]; BM25 scores here are O(1)-O(30)


def _stdlib_lines(n: int, seed: int = 0) -> list[str]:
    lines = [line for line in stdlib_corpus(60_000).splitlines() if line.strip()]
    return random.Random(seed).sample(lines, n)


CORPORA = {
    "stdlib": _stdlib_lines(200),
    "unicode": [
        "Naïve café — CAFÉ naïve",
        "東京 東京都 straße STRASSE",
        "ΣΊΣΥΦΟΣ σίσυφος 123 ١٢٣",
        "don't can't won't",
    ],
    "empty_doc": ["the cat sat", "", "the dog sat down", "   ", "cat cat cat"],
    "stop_length": ["a b c", "ab cd", "x y z ab", "I O U"],  # single letters are not tokens
    "one_doc": ["only one document here here"],
}


# --------------------------------------------------------------------------- word_tokens and tfidf


@pytest.mark.parametrize("name", list(CORPORA))
def test_word_tokens_match_sklearn_analyzer(name: str) -> None:
    lower = CountVectorizer().build_analyzer()
    keep_case = CountVectorizer(lowercase=False).build_analyzer()
    for doc in CORPORA[name]:
        assert word_tokens(doc) == lower(doc), doc
        assert word_tokens(doc, lowercase=False) == keep_case(doc), doc


@pytest.mark.parametrize("name", list(CORPORA))
def test_tfidf_matches_sklearn(name: str) -> None:
    docs = CORPORA[name]
    vectorizer = TfidfVectorizer()
    expected = vectorizer.fit_transform(docs).toarray()
    matrix, vocabulary = tfidf(docs)
    assert vocabulary == vectorizer.get_feature_names_out().tolist()
    assert matrix.dtype == np.float64 and matrix.shape == (len(docs), len(vocabulary))
    np.testing.assert_allclose(matrix, expected, rtol=0, atol=TOL, err_msg=f"corpus {name}")
    norms = np.linalg.norm(matrix, axis=1)
    empty = [i for i, doc in enumerate(docs) if not word_tokens(doc)]
    np.testing.assert_allclose(norms[empty], 0.0, rtol=0, atol=0, err_msg="empty documents are zero rows")
    np.testing.assert_allclose(np.delete(norms, empty), 1.0, rtol=0, atol=1e-12, err_msg="unit rows")


def test_tfidf_with_vocabulary_matches_sklearn() -> None:
    docs = CORPORA["empty_doc"] + ["zebra"]
    vocabulary = ["sat", "the", "absent", "cat", "Dog", "zebra"]  # unsorted; "absent" in no doc; "Dog" never matches
    with pytest.warns(UserWarning, match="Upper case"):  # sklearn says "Dog" can never match; so do we
        expected = TfidfVectorizer(vocabulary=vocabulary).fit_transform(docs).toarray()
    matrix, terms = tfidf(docs, vocabulary=vocabulary)
    assert terms == vocabulary
    np.testing.assert_allclose(matrix, expected, rtol=0, atol=TOL, err_msg="given vocabulary")
    only_zebra, _ = tfidf(docs, vocabulary=("zebra",))
    np.testing.assert_allclose(only_zebra[:, 0], [0, 0, 0, 0, 0, 1.0], rtol=0, atol=0, err_msg="zero rows")


def test_tfidf_hand_example() -> None:
    matrix, vocabulary = tfidf(["aa bb", "aa"])
    idf_bb = math.log(3 / 2) + 1  # ln((1 + n) / (1 + df)) + 1 with n = 2, df = 1; idf_aa = 1
    row = np.array([1.0, idf_bb]) / math.hypot(1.0, idf_bb)
    assert vocabulary == ["aa", "bb"]
    np.testing.assert_allclose(matrix, np.stack([row, [1.0, 0.0]]), rtol=0, atol=1e-15, err_msg="by hand")


def test_tfidf_errors() -> None:
    with pytest.raises(ValueError, match="empty vocabulary"):
        tfidf(["a b c", "", "!"])
    with pytest.raises(ValueError, match="docs is empty"):
        tfidf([])
    with pytest.raises(ValueError, match=r"duplicate terms in vocabulary: \['cat'\]"):
        tfidf(["cat"], vocabulary=["cat", "dog", "cat"])
    with pytest.raises(ValueError, match="empty vocabulary"):
        tfidf(["cat"], vocabulary=[])
    with pytest.raises(TypeError, match="single str"):
        tfidf("the cat sat")


# --------------------------------------------------------------------------- BM25


def loop_bm25(query: list[str], docs: list[list[str]], k1: float, b: float) -> NDArray[np.float64]:
    """Straight from the formula, one float64 at a time."""
    n = len(docs)
    avgdl = sum(len(d) for d in docs) / n if n else 0.0
    df = {term: sum(term in d for d in docs) for term in query}
    out = []
    for doc in docs:
        score = 0.0
        for term in query:
            tf = doc.count(term)
            if tf == 0:  # a document without the term: 0 (the formula is 0/0 when k1 = 0, or b = 1 and |d| = 0)
                continue
            idf = math.log(1 + (n - df[term] + 0.5) / (df[term] + 0.5))
            score += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(doc) / avgdl))
        out.append(score)
    return np.array(out, dtype=np.float64)


def rank_bm25_lucene(query: list[str], docs: list[list[str]], k1: float, b: float) -> NDArray[np.float64]:
    """``rank_bm25.BM25Okapi`` with its idf table replaced by Lucene's.

    BM25Okapi uses ``ln((N - df + 0.5) / (df + 0.5))``, negative for terms in more than half the
    documents, floored at ``epsilon * mean idf``; everything else (tf saturation, length
    normalisation, summing over repeated query tokens) is the formula we follow. ``get_scores``
    reads ``self.idf[term]`` per query token, so overwriting that dict gives Lucene's BM25."""
    model = BM25Okapi(docs, k1=k1, b=b)
    n = len(docs)
    df = Counter(term for frequencies in model.doc_freqs for term in frequencies)
    model.idf = {term: math.log(1 + (n - count + 0.5) / (count + 0.5)) for term, count in df.items()}
    # With b = 1 an empty document gets 0 / 0 = NaN from BM25Okapi for every query term; it has no
    # term, so its score is 0. (With k1 = 0 every document lacking one query term gets NaN, which
    # poisons the other terms' sum too: BM25Okapi is no oracle there; the float64 loop is.)
    with np.errstate(invalid="ignore"):
        scores = np.asarray(model.get_scores(query), dtype=np.float64)
    return np.nan_to_num(scores, nan=0.0)


def _docs(n: int, seed: int) -> list[list[str]]:
    """Zipf-distributed words, lengths 0..60 (some documents empty)."""
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(300)]
    p = 1 / np.arange(1, 301)
    p /= p.sum()
    return [[words[j] for j in rng.choice(300, size=rng.integers(0, 61), p=p)] for _ in range(n)]


BM25_CASES = {
    "stdlib": ([word_tokens(line) for line in _stdlib_lines(300, seed=1)], ["the", "return", "value", "of", "self"]),
    "repeated_terms": (_docs(120, 0), ["w0", "w5", "w5", "w5", "w40", "w0"]),
    "absent_terms": (_docs(80, 1), ["nothere", "w3", "alsonot"]),
    "empty_query": (_docs(30, 2), []),
    "empty_docs_some": ([[], ["a", "b"], [], ["b", "b", "c"], ["a"]], ["b", "a", "zz"]),
    "single_doc": ([["x", "y", "x"]], ["x", "y", "y"]),
}
PARAMS = [(1.2, 0.75), (0.0, 0.75), (2.0, 0.0), (1.5, 1.0), (0.5, 0.3)]


@pytest.mark.parametrize(("k1", "b"), PARAMS)
@pytest.mark.parametrize("case", list(BM25_CASES))
def test_bm25_matches_rank_bm25_and_loop(case: str, k1: float, b: float) -> None:
    docs, query = BM25_CASES[case]
    expected = loop_bm25(query, docs, k1, b)
    ours = bm25_scores(query, docs, k1, b)
    index = BM25(docs, k1, b)
    assert ours.dtype == np.float64 and ours.shape == (len(docs),)
    np.testing.assert_allclose(ours, expected, rtol=0, atol=TOL, err_msg=f"bm25_scores vs loop, {case}")
    np.testing.assert_allclose(index.scores(query), expected, rtol=0, atol=TOL, err_msg=f"BM25.scores vs loop, {case}")
    if k1 == 0:
        return  # rank_bm25 yields NaN for documents missing a query term (see rank_bm25_lucene)
    peer = rank_bm25_lucene(query, docs, k1, b)
    np.testing.assert_allclose(ours, peer, rtol=0, atol=TOL, err_msg=f"bm25_scores vs rank_bm25, {case}")
    np.testing.assert_allclose(index.scores(query), peer, rtol=0, atol=TOL, err_msg=f"BM25 vs rank_bm25, {case}")


def test_bm25_repeated_query_token_counts_each_time() -> None:
    docs = _docs(50, 3)
    once, twice = bm25_scores(["w2"], docs), bm25_scores(["w2", "w2"], docs)
    np.testing.assert_allclose(twice, 2 * once, rtol=0, atol=TOL, err_msg="repeated token")
    assert once.max() > 0


def test_bm25_idf_is_never_negative() -> None:
    docs = [["common", "x"], ["common"], ["common", "y"], ["rare"]]  # "common" in 3 of 4 documents
    scores = bm25_scores(["common"], docs)
    assert (scores[:3] > 0).all() and scores[3] == 0.0


def test_bm25_zero_over_zero_cases_are_zero() -> None:
    docs = [["a", "a", "a"], ["b"], []]
    idf_a = math.log(1 + (3 - 1 + 0.5) / (1 + 0.5))
    for scores in (bm25_scores(["a", "b"], docs, k1=0.0), BM25(docs, k1=0.0).scores(["a", "b"])):
        np.testing.assert_allclose(scores, [idf_a, idf_a, 0.0], rtol=0, atol=TOL, err_msg="k1 = 0: presence only")
    for scores in (bm25_scores(["a"], docs, b=1.0), BM25(docs, b=1.0).scores(["a"])):
        assert np.isfinite(scores).all() and scores[2] == 0.0, "b = 1 and an empty document"


def test_bm25_degenerate_corpora() -> None:
    assert bm25_scores(["a"], []).shape == (0,) and BM25([]).scores(["a"]).shape == (0,)
    assert BM25([]).top_k(["a"], 3) == []
    all_empty: list[list[str]] = [[], [], []]
    np.testing.assert_array_equal(bm25_scores(["a"], all_empty), np.zeros(3))
    np.testing.assert_array_equal(BM25(all_empty).scores(["a"]), np.zeros(3))
    np.testing.assert_array_equal(loop_bm25(["a"], all_empty, 1.2, 0.75), np.zeros(3))


def test_top_k_order_and_ties() -> None:
    docs = [["b"], ["a"], ["a", "c"], ["a"], ["c"], []]
    index = BM25(docs)
    scores = index.scores(["a"])
    assert scores[1] == scores[3] > scores[2] > 0 and scores[0] == scores[4] == scores[5] == 0
    assert index.top_k(["a"], 3) == [1, 3, 2], "ties by index ascending"
    assert index.top_k(["a"], 100) == [1, 3, 2, 0, 4, 5]
    assert index.top_k(["a"], 0) == [] and index.top_k([], 2) == [0, 1]
    big = _docs(2000, 4)
    query = ["w1", "w7", "w30"]
    reference = loop_bm25(query, big, 1.2, 0.75)
    expected = sorted(range(len(big)), key=lambda i: (-reference[i], i))[:10]
    assert BM25(big).top_k(query, 10) == expected


def test_bm25_errors() -> None:
    for k1, b in [(-0.1, 0.75), (float("nan"), 0.5), (float("inf"), 0.5)]:
        with pytest.raises(ValueError, match="k1 must be"):
            bm25_scores(["a"], [["a"]], k1=k1, b=b)
        with pytest.raises(ValueError, match="k1 must be"):
            BM25([["a"]], k1=k1, b=b)
    for b in (-0.01, 1.01, float("nan")):
        with pytest.raises(ValueError, match=r"b must be in \[0, 1\]"):
            bm25_scores(["a"], [["a"]], b=b)
    with pytest.raises(TypeError, match="query must be a sequence of tokens"):
        bm25_scores("a query", [["a"]])
    with pytest.raises(TypeError, match=r"docs\[1\]"):
        BM25([["a"], "not tokenized"])
    with pytest.raises(ValueError, match="k must be"):
        BM25([["a"]]).top_k(["a"], -1)
