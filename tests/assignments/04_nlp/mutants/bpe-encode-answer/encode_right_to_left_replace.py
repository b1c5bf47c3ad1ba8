"""Replaces the chosen pair scanning from the END of the chunk (the usual trick for deleting in place without index shifts), so `a a a` becomes `a aa` instead of `aa a` as HF and the statement do."""


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
            cands = [rank[p] for p in zip(toks, toks[1:]) if p in rank]
            if not cands:
                break
            r = min(cands)
            a, b = merges[r]
            i = len(toks) - 2
            while i >= 0:
                if toks[i] == a and toks[i + 1] == b:
                    toks[i : i + 2] = [256 + r]
                    i -= 2
                else:
                    i -= 1
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
