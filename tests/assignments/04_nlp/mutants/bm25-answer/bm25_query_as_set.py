"""Iterates over set(query) to avoid 'double counting' a repeated query token; the statement says the sum runs over the query tokens with repetition."""

# fails: test-bm25
# %% grade_id=bm25-answer
import numbers


def bm25_scores(query, docs, k1: float = 1.2, b: float = 0.75) -> np.ndarray:
    if not (isinstance(k1, numbers.Real) and k1 >= 0):
        raise ValueError("k1 must be >= 0")
    if not (isinstance(b, numbers.Real) and 0 <= b <= 1):
        raise ValueError("b must be in [0, 1]")
    n = len(docs)
    scores = np.zeros(n, dtype=np.float64)
    if n == 0:
        return scores
    avgdl = sum(len(d) for d in docs) / n
    if avgdl == 0:
        return scores
    for t in set(query):
        df = sum(t in d for d in docs)
        if df == 0:
            continue
        idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
        for i, d in enumerate(docs):
            tf = d.count(t)
            if tf:
                scores[i] += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(d) / avgdl))
    return scores
