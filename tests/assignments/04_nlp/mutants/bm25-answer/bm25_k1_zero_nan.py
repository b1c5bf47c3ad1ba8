"""Fully vectorized term-frequency matrix: with k1 = 0 (allowed) a document without the term gives 0 / 0 = NaN instead of contributing 0."""

# fails: test-bm25
# %% grade_id=bm25-answer
import numbers


def bm25_scores(query, docs, k1: float = 1.2, b: float = 0.75) -> np.ndarray:
    if not (isinstance(k1, numbers.Real) and k1 >= 0):
        raise ValueError("k1 must be >= 0")
    if not (isinstance(b, numbers.Real) and 0 <= b <= 1):
        raise ValueError("b must be in [0, 1]")
    n = len(docs)
    if n == 0:
        return np.zeros(0, dtype=np.float64)
    dl = np.array([len(d) for d in docs], dtype=np.float64)
    if dl.sum() == 0:
        return np.zeros(n, dtype=np.float64)
    avgdl = dl.mean()
    tf = np.array([[d.count(t) for t in query] for d in docs], dtype=np.float64).reshape(n, len(query))
    df = np.array([sum(t in d for d in docs) for t in query], dtype=np.float64)
    idf = np.log(1 + (n - df + 0.5) / (df + 0.5))
    with np.errstate(invalid="ignore", divide="ignore"):
        part = tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl)[:, None])
    return (part * idf).sum(axis=1)
