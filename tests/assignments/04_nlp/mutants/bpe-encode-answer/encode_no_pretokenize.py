"""Encodes the whole text as one byte sequence, thinking pre-tokenization only matters for training: merges such as (111, 32) 'o ' then fire across chunk boundaries, unlike HF."""


# fails: test-bpe-encode
# %% grade_id=bpe-encode-answer
def bpe_encode(text: str, merges: list[tuple[int, int]]) -> list[int]:
    rank = {tuple(m): k for k, m in reversed(list(enumerate(merges)))}
    toks = list(text.encode("utf-8"))
    while len(toks) > 1:
        cands = [rank[p] for p in zip(toks, toks[1:]) if p in rank]
        if not cands:
            break
        r = min(cands)
        a, b = merges[r]
        out, i = [], 0
        while i < len(toks):
            if i + 1 < len(toks) and toks[i] == a and toks[i + 1] == b:
                out.append(256 + r)
                i += 2
            else:
                out.append(toks[i])
                i += 1
        toks = out
    return toks


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
