"""Reuses the training step for encoding: in each chunk it merges the known pair that occurs MOST OFTEN (rank only breaks ties), instead of always the lowest-rank pair as GPT-2/HF do."""


# fails: test-bpe-encode
# %% grade_id=bpe-encode-answer
def bpe_encode(text: str, merges: list[tuple[int, int]]) -> list[int]:
    rank = {}
    for k, m in enumerate(merges):
        rank.setdefault(tuple(m), k)
    ids = []
    for chunk in pretokenize(text):
        toks = list(chunk.encode("utf-8"))
        while len(toks) > 1:
            counts = {}
            for p in zip(toks, toks[1:]):
                if p in rank:
                    counts[p] = counts.get(p, 0) + 1
            if not counts:
                break
            best = min(counts, key=lambda p: (-counts[p], rank[p]))
            r = rank[best]
            out, i = [], 0
            while i < len(toks):
                if i + 1 < len(toks) and (toks[i], toks[i + 1]) == best:
                    out.append(256 + r)
                    i += 2
                else:
                    out.append(toks[i])
                    i += 1
            toks = out
        ids.extend(toks)
    return ids


def bpe_decode(ids: list[int], merges: list[tuple[int, int]]) -> str:
    table = [bytes([i]) for i in range(256)]
    for a, b in merges:
        table.append(table[a] + table[b])
    out = b""
    for i in ids:
        if i < 0 or i >= len(table):
            raise ValueError(f"bad id {i}")
        out += table[i]
    return out.decode("utf-8", errors="replace")
