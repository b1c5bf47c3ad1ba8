"""Tie rule half-applied: among pairs with the top count it takes the smallest LEFT id only, leaving ties on the left id to dict order, so (97, 99) can beat (97, 98)."""


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
            for p in zip(toks, toks[1:]):
                counts[p] = counts.get(p, 0) + 1
        if not counts:
            break
        top = max(counts.values())
        best = min((p for p in counts if counts[p] == top), key=lambda p: p[0])
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
