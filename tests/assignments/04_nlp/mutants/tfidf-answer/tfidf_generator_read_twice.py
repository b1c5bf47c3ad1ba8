"""Builds the vocabulary in one pass over `docs` and the counts in a second pass: with a one-shot generator the second pass sees nothing and the matrix has 0 rows."""


# fails: test-tfidf
# %% grade_id=tfidf-answer
def tfidf(docs) -> tuple[np.ndarray, list[str]]:
    pat = r"(?u)\b\w\w+\b"
    vocabulary = sorted({t for d in docs for t in re.findall(pat, d.lower())})
    if not vocabulary:
        raise ValueError("empty vocabulary")
    col = {t: j for j, t in enumerate(vocabulary)}
    rows = []
    for d in docs:
        r = np.zeros(len(vocabulary))
        for t in re.findall(pat, d.lower()):
            r[col[t]] += 1
        rows.append(r)
    tf = np.array(rows, dtype=np.float64).reshape(-1, len(vocabulary))
    n = tf.shape[0]
    df = (tf > 0).sum(0)
    x = tf * (np.log((1 + n) / (1 + df)) + 1)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0), vocabulary
