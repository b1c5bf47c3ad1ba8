"""Counts a run of identical tokens without overlap (thinking `a a a` can only be merged once, so (a, a) should count once), whereas the statement says it counts twice."""


# fails: test-train-bpe
# %% grade_id=train-bpe-answer
def train_bpe(text: str, num_merges: int) -> list[tuple[int, int]]:
    if num_merges < 0:
        raise ValueError("num_merges must be >= 0")
    chunks = [list(c.encode("utf-8")) for c in pretokenize(text)]
    merges = []
    while len(merges) < num_merges:
        counts = {}
        for toks in chunks:
            i = 0
            while i < len(toks) - 1:
                p = (toks[i], toks[i + 1])
                counts[p] = counts.get(p, 0) + 1
                i += 2 if toks[i] == toks[i + 1] else 1
        if not counts:
            break
        best = min(counts, key=lambda p: (-counts[p], p))
        new_id = 256 + len(merges)
        merges.append(best)
        new_chunks = []
        for toks in chunks:
            out, i = [], 0
            while i < len(toks):
                if i + 1 < len(toks) and (toks[i], toks[i + 1]) == best:
                    out.append(new_id)
                    i += 2
                else:
                    out.append(toks[i])
                    i += 1
            new_chunks.append(out)
        chunks = new_chunks
    return merges
