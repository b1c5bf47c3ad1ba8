"""Vectorized pair counting with NumPy: the merges come out as tuples of np.int64, which compare equal to ints but are not the 'two Python ints' the statement promises."""


# fails: test-train-bpe
# %% grade_id=train-bpe-answer
def train_bpe(text: str, num_merges: int) -> list[tuple[int, int]]:
    if num_merges < 0:
        raise ValueError("num_merges must be >= 0")
    chunks = [np.frombuffer(c.encode("utf-8"), dtype=np.uint8).astype(np.int64) for c in pretokenize(text)]
    merges = []
    while len(merges) < num_merges:
        pairs = [np.stack([c[:-1], c[1:]], axis=1) for c in chunks if len(c) > 1]
        if not pairs:
            break
        allp = np.concatenate(pairs)
        uniq, cnt = np.unique(allp, axis=0, return_counts=True)  # rows sorted lexicographically
        best_row = uniq[np.argmax(cnt)]  # first max = smallest tuple
        best = (best_row[0], best_row[1])
        new_id = 256 + len(merges)
        merges.append(best)
        new_chunks = []
        for c in chunks:
            out, i = [], 0
            while i < len(c):
                if i + 1 < len(c) and c[i] == best[0] and c[i + 1] == best[1]:
                    out.append(new_id)
                    i += 2
                else:
                    out.append(c[i])
                    i += 1
            new_chunks.append(np.array(out, dtype=np.int64))
        chunks = new_chunks
    return merges
