"""The original Robertson idf ln((N - df + 0.5) / (df + 0.5)), negative for common terms."""

# fails: test-bm25
# %% grade_id=bm25-answer
import math

import numpy as np


def bm25_scores(query, docs, k1: float = 1.2, b: float = 0.75) -> np.ndarray:
    """BM25 score of every document for ``query`` (Lucene idf), float64 ``(len(docs),)``."""
    if not k1 >= 0:
        raise ValueError(f"k1 must be >= 0, got {k1}")
    if not 0 <= b <= 1:
        raise ValueError(f"b must be in [0, 1], got {b}")
    counts = []
    for doc in docs:
        tf: dict[str, int] = {}
        for token in doc:
            tf[token] = tf.get(token, 0) + 1
        counts.append(tf)
    lengths = np.array([sum(tf.values()) for tf in counts], dtype=np.float64)
    scores = np.zeros(len(counts))
    if not counts or lengths.sum() == 0:
        return scores
    avgdl = lengths.mean()
    for term in query:
        df = sum(term in tf for tf in counts)
        if df == 0:
            continue
        idf = math.log((len(counts) - df + 0.5) / (df + 0.5))
        for d, tf in enumerate(counts):
            f = tf.get(term, 0)
            if f:
                scores[d] += idf * f * (k1 + 1) / (f + k1 * (1 - b + b * lengths[d] / avgdl))
    return scores
