"""Splits on whitespace and strips punctuation at the ends."""

# fails: test-tfidf
# %% grade_id=tfidf-answer

import numpy as np


def tfidf(docs) -> tuple[np.ndarray, list[str]]:
    """TF-IDF rows (float64, ``(n_docs, V)``) and the sorted vocabulary, as ``TfidfVectorizer()``."""
    tokenized = [[w.strip(".,!?;:") for w in doc.lower().split() if len(w.strip(".,!?;:")) > 1] for doc in docs]
    vocabulary = sorted({token for tokens in tokenized for token in tokens})
    if not vocabulary:
        raise ValueError("empty vocabulary: the documents hold no token of two or more word characters")
    column = {token: j for j, token in enumerate(vocabulary)}
    tf = np.zeros((len(tokenized), len(vocabulary)))
    for d, tokens in enumerate(tokenized):
        for token in tokens:
            tf[d, column[token]] += 1
    df = (tf > 0).sum(axis=0)
    idf = np.log((1 + len(tokenized)) / (1 + df)) + 1
    weighted = tf * idf
    norms = np.linalg.norm(weighted, axis=1, keepdims=True)
    return np.divide(weighted, norms, out=np.zeros_like(weighted), where=norms > 0), vocabulary
