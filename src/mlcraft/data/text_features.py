"""Bag-of-words features: TF-IDF as scikit-learn computes it, and Okapi BM25 as Lucene scores it.

- TF-IDF (Spärck Jones, 1972; Salton & Buckley, 1988, "Term-weighting approaches in automatic text
  retrieval") with scikit-learn's defaults (``TfidfVectorizer()``,
  https://scikit-learn.org/stable/modules/feature_extraction.html#tfidf-term-weighting): raw counts,
  ``idf(t) = ln((1 + n) / (1 + df(t))) + 1`` (smoothed), each row scaled to unit L2 norm.
- BM25 (Robertson & Zaragoza, 2009, "The Probabilistic Relevance Framework: BM25 and Beyond"), with
  Lucene's non-negative idf ``ln(1 + (N - df + 0.5) / (df + 0.5))`` (``BM25Similarity``)::

      score(q, d) = Σ_{t in q} idf(t) · tf(t, d) · (k1 + 1) / (tf(t, d) + k1 · (1 - b + b · |d| / avgdl))

  A query token repeated counts each time (as ``rank_bm25`` and a Lucene boolean query of repeated
  clauses do). The classic Robertson-Spärck Jones idf ``ln((N - df + 0.5) / (df + 0.5))`` is negative
  for terms in more than half the documents; ``rank_bm25.BM25Okapi`` patches that with a floor.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

__all__ = ["BM25", "TOKEN_PATTERN", "bm25_scores", "tfidf", "word_tokens"]

#: scikit-learn's default ``token_pattern``: runs of two or more word characters.
TOKEN_PATTERN = r"(?u)\b\w\w+\b"
_TOKEN_RE = re.compile(TOKEN_PATTERN)

Floats = NDArray[np.float64]


def word_tokens(text: str, lowercase: bool = True) -> list[str]:
    """Words of ``text`` as scikit-learn's default analyzer finds them (``str.lower``, no accent
    stripping, :data:`TOKEN_PATTERN`): ``"It's a DOG-eat-dog world" -> ['it', 'dog', 'eat', 'dog', 'world']``."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return _TOKEN_RE.findall(text.lower() if lowercase else text)


def tfidf(docs: Sequence[str], vocabulary: Sequence[str] | None = None) -> tuple[Floats, list[str]]:
    """TF-IDF matrix of ``docs`` equal to ``TfidfVectorizer(vocabulary=vocabulary).fit_transform(docs)``.

    Args:
        docs: ``n_docs >= 1`` texts, tokenized by :func:`word_tokens`.
        vocabulary: the columns, in this order (distinct, non-empty); default: every token of
            ``docs``, sorted. The idf always comes from ``docs``, so a column whose term is in no
            document gets ``ln(1 + n_docs) + 1`` and a zero column.

    Returns:
        ``(matrix, vocabulary)``: ``matrix`` dense float64 ``(n_docs, V)``, each row of unit L2 norm,
        except a document with no token of the vocabulary, which is a zero row.

    Raises:
        ValueError: no documents, no token in any document (scikit-learn's "empty vocabulary"),
            an empty or duplicated ``vocabulary``.
        TypeError: ``docs`` (or ``vocabulary``) given as a single str.
    """
    if isinstance(docs, str):
        raise TypeError("docs must be a sequence of str, got a single str (wrap it in a list)")
    tokenized = [Counter(word_tokens(doc)) for doc in docs]
    if not tokenized:
        raise ValueError("docs is empty: need at least one document")
    if vocabulary is None:
        terms = sorted({term for counts in tokenized for term in counts})
        if not terms:
            raise ValueError("empty vocabulary: no document has a token of 2+ word characters")
    else:
        if isinstance(vocabulary, str):
            raise TypeError("vocabulary must be a sequence of str, got a single str")
        terms = list(vocabulary)
        if not terms:
            raise ValueError("empty vocabulary passed")
        repeated = [t for t, c in Counter(terms).items() if c > 1]
        if repeated:
            raise ValueError(f"duplicate terms in vocabulary: {repeated[:5]}")
    column = {term: j for j, term in enumerate(terms)}
    counts = np.zeros((len(tokenized), len(terms)), dtype=np.float64)  # (n_docs, V)
    for i, doc_counts in enumerate(tokenized):
        for term, count in doc_counts.items():
            j = column.get(term)
            if j is not None:
                counts[i, j] = count
    n_docs = len(tokenized)
    df = (counts > 0).sum(axis=0)  # (V,)
    idf = np.log((1.0 + n_docs) / (1.0 + df)) + 1.0  # (V,)
    weights = counts * idf  # (n_docs, V)
    norms = np.sqrt((weights * weights).sum(axis=1, keepdims=True))  # (n_docs, 1)
    return np.divide(weights, norms, out=np.zeros_like(weights), where=norms > 0), terms


def _check_params(k1: float, b: float) -> None:
    if not (isinstance(k1, int | float) and math.isfinite(k1) and k1 >= 0):
        raise ValueError(f"k1 must be a finite number >= 0, got {k1!r}")
    if not (isinstance(b, int | float) and 0 <= b <= 1):
        raise ValueError(f"b must be in [0, 1], got {b!r}")


def _check_tokens(tokens: Sequence[str], name: str) -> list[str]:
    if isinstance(tokens, str):
        raise TypeError(f"{name} must be a sequence of tokens, got a single str (use word_tokens(text))")
    return list(tokens)


def _idf(n_docs: int, df: int) -> float:
    """Lucene's BM25 idf ``ln(1 + (N - df + 0.5) / (df + 0.5))``, > 0 for every ``0 <= df <= N``."""
    return math.log1p((n_docs - df + 0.5) / (df + 0.5))


def bm25_scores(query: Sequence[str], docs: Sequence[Sequence[str]], k1: float = 1.2, b: float = 0.75) -> Floats:
    """BM25 score of every document for ``query`` (see the module docstring), computed from scratch.

    Args:
        query: query tokens; a token repeated adds its term's score again.
        docs: tokenized documents (``N >= 0``; lists of str, not strings).
        k1: term-frequency saturation, ``>= 0`` (0: presence only). b: length normalisation in ``[0, 1]``.

    Returns:
        float64 ``(N,)``. A term adds 0 to a document without it (Lucene scores only matching
        documents), also where the formula reads 0/0 (``k1 = 0``, or ``b = 1`` and an empty
        document). A term in no document adds 0; an empty query or documents that are all
        empty (``avgdl = 0``) give zeros; no documents give an empty array.
    """
    _check_params(k1, b)
    terms = _check_tokens(query, "query")
    counts = [Counter(_check_tokens(doc, f"docs[{i}]")) for i, doc in enumerate(docs)]
    n_docs = len(counts)
    scores = np.zeros(n_docs, dtype=np.float64)
    lengths = np.array([sum(c.values()) for c in counts], dtype=np.float64)  # (N,)
    if n_docs == 0 or lengths.sum() == 0:
        return scores
    norm = k1 * (1.0 - b + b * lengths / lengths.mean())  # (N,)
    for term in terms:
        tf = np.array([c.get(term, 0) for c in counts], dtype=np.float64)  # (N,)
        df = int((tf > 0).sum())
        if df > 0:  # where tf = 0 the term adds 0, also where the formula is 0/0 (k1 = 0, or b = 1 and |d| = 0)
            saturation = np.divide(tf * (k1 + 1.0), tf + norm, out=np.zeros(n_docs), where=tf > 0)  # (N,)
            scores += _idf(n_docs, df) * saturation
    return scores


class BM25:
    """BM25 over a fixed corpus for many queries: per-term postings ``(doc indices, weights)`` with the
    whole term weight ``idf · tf · (k1 + 1) / (tf + k1 · (1 - b + b · |d| / avgdl))`` precomputed, so a
    query costs the length of its terms' postings. Scores equal :func:`bm25_scores`."""

    def __init__(self, docs: Sequence[Sequence[str]], k1: float = 1.2, b: float = 0.75) -> None:
        _check_params(k1, b)
        self.k1, self.b = float(k1), float(b)
        counts = [Counter(_check_tokens(doc, f"docs[{i}]")) for i, doc in enumerate(docs)]
        self.n_docs = len(counts)
        self.doc_lengths = np.array([sum(c.values()) for c in counts], dtype=np.float64)  # (N,)
        self.avgdl = float(self.doc_lengths.mean()) if self.n_docs else 0.0
        postings: dict[str, tuple[list[int], list[int]]] = {}
        for i, doc_counts in enumerate(counts):
            for term, count in doc_counts.items():
                docs_of_term, tfs = postings.setdefault(term, ([], []))
                docs_of_term.append(i)
                tfs.append(count)
        self.postings: dict[str, tuple[NDArray[np.int64], Floats]] = {}
        if self.avgdl == 0:
            return  # every document is empty: no postings, every score 0
        norm = self.k1 * (1.0 - self.b + self.b * self.doc_lengths / self.avgdl)  # (N,)
        for term, (docs_of_term, tfs) in postings.items():
            index = np.array(docs_of_term, dtype=np.int64)  # (P,)
            tf = np.array(tfs, dtype=np.float64)  # (P,)
            idf = _idf(self.n_docs, len(index))
            self.postings[term] = (index, idf * (tf * (self.k1 + 1.0) / (tf + norm[index])))

    def scores(self, query: Sequence[str]) -> Floats:
        """float64 ``(N,)`` scores of every document for ``query``."""
        scores = np.zeros(self.n_docs, dtype=np.float64)
        for term in _check_tokens(query, "query"):
            posting = self.postings.get(term)
            if posting is not None:
                scores[posting[0]] += posting[1]  # a document appears once per posting list
        return scores

    def top_k(self, query: Sequence[str], k: int) -> list[int]:
        """Indices of the ``min(k, N)`` best documents, by score descending, ties by index ascending."""
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 0:
            raise ValueError(f"k must be an int >= 0, got {k!r}")
        order = np.argsort(-self.scores(query), kind="stable")  # stable: equal scores keep index order
        return [int(i) for i in order[: int(k)]]
