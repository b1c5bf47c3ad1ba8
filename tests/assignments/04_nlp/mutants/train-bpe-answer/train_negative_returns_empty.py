"""A negative num_merges simply makes the while loop not run and returns [] instead of raising ValueError."""


# fails: test-train-bpe
# %% grade_id=train-bpe-answer
def train_bpe(text: str, num_merges: int) -> list[tuple[int, int]]:
    chunks = [list(c.encode("utf-8")) for c in pretokenize(text)]
    merges = []
    while len(merges) < num_merges:
        counts = {}
        for toks in chunks:
            for p in zip(toks, toks[1:]):
                counts[p] = counts.get(p, 0) + 1
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
