"""Finds the tokens first and lowercases each token afterwards: the same on ASCII, but str.lower can change a string's characters ('İ' -> 'i' + U+0307), so the regex must run on the lowered document as stated."""


# fails: test-tfidf
# %% grade_id=tfidf-answer
def tfidf(docs) -> tuple[np.ndarray, list[str]]:
    pat = re.compile(r"(?u)\b\w\w+\b")
    toks = [[t.lower() for t in pat.findall(d)] for d in docs]
    n = len(toks)
    vocabulary = sorted({t for ts in toks for t in ts})
    if not vocabulary:
        raise ValueError("empty vocabulary")
    col = {t: j for j, t in enumerate(vocabulary)}
    tf = np.zeros((n, len(vocabulary)), dtype=np.float64)
    for i, ts in enumerate(toks):
        for t in ts:
            tf[i, col[t]] += 1
    df = (tf > 0).sum(0)
    x = tf * (np.log((1 + n) / (1 + df)) + 1)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0), vocabulary
