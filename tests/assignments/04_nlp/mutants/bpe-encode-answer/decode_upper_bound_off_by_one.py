"""Off-by-one in the range check (`i > 256 + len(merges)`): the id exactly 256 + len(merges) slips through and raises KeyError from the lookup table instead of ValueError."""


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
            out, i = [], 0
            while i < len(toks):
                if i + 1 < len(toks) and toks[i] == a and toks[i + 1] == b:
                    out.append(256 + r)
                    i += 2
                else:
                    out.append(toks[i])
                    i += 1
            toks = out
        ids.extend(toks)
    return ids


def bpe_decode(ids: list[int], merges: list[tuple[int, int]]) -> str:
    table = {i: bytes([i]) for i in range(256)}
    for k, (a, b) in enumerate(merges):
        table[256 + k] = table[a] + table[b]
    out = b""
    for i in ids:
        if i < 0 or i > 256 + len(merges):
            raise ValueError(f"id {i} is not in the vocabulary")
        out += table[i]
    return out.decode("utf-8", errors="replace")
