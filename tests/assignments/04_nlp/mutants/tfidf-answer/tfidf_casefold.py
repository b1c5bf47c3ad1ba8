"""Uses str.casefold() ('the proper caseless form') instead of str.lower(): 'straße' becomes 'strasse', so vocabulary and columns differ from TfidfVectorizer on such text."""


# fails: test-tfidf
# %% grade_id=tfidf-answer
def tfidf(docs) -> tuple[np.ndarray, list[str]]:
    pat = re.compile(r"(?u)\b\w\w+\b")
    toks = [pat.findall(d.casefold()) for d in docs]
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
